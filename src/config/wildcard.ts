// Name patterns ("studio-*") as the configuration and permissions use them. No imports:
// both the configuration schema and what it configures use it.

/** "studio-*" style patterns: `*` matches any run of characters, everything else itself. */
export function matchesPattern(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(name);
}
