// Name patterns ("studio-*") as the configuration and permissions use them. No imports:
// both the configuration schema and what it configures use it.
//
// Patterns come from callers too (a JWT's permissions), so matching must not depend on
// what they contain: a regex with `.*` per star backtracked, and `*a*a*a*a*a*a*b` held
// the main thread for 5.9 s against a 64-character name. Here a pattern is split at its
// stars into literal pieces; the first must start the name, the last must end it, and
// the ones between are found left to right, each at its leftmost place after the one
// before. Leftmost is always right: a piece found earlier leaves more room for the rest,
// so if any placement works, that one does. Each piece is searched with Knuth-Morris-
// Pratt, which never looks at a character of the name twice in one search, and each
// search starts where the previous piece ended: at most 2n + 2m character comparisons
// for a name of n and a pattern of m characters, whatever the pattern.

/** Longest pattern the configuration and JWT permissions accept (the matcher is linear anyway). */
export const MAX_PATTERN_LENGTH = 256;

/** "studio-*" style patterns: `*` matches any run of characters, everything else itself. */
export function matchesPattern(pattern: string, name: string): boolean {
  return matchGlob(pattern, name);
}

/** matchesPattern, counting character comparisons into `count` (tests hold it to its bound). */
export function matchGlob(pattern: string, name: string, count: { comparisons: number } = { comparisons: 0 }): boolean {
  const pieces = pattern.split('*');
  const first = pieces[0];
  if (pieces.length === 1) {
    count.comparisons += Math.min(pattern.length, name.length);
    return pattern === name;
  }
  const last = pieces[pieces.length - 1];
  if (first.length + last.length > name.length) return false;
  count.comparisons += first.length + last.length;
  if (!name.startsWith(first) || !name.endsWith(last)) return false;
  let from = first.length;
  const end = name.length - last.length; // the middle pieces must fit before the last one
  for (let i = 1; i < pieces.length - 1; i++) {
    const at = find(pieces[i], name, from, end, count);
    if (at < 0) return false;
    from = at + pieces[i].length;
  }
  return true;
}

/** Where `piece` first occurs in name[from, end), or -1 (Knuth-Morris-Pratt). */
function find(piece: string, name: string, from: number, end: number, count: { comparisons: number }): number {
  if (piece.length === 0) return from;
  if (end - from < piece.length) return -1;
  // fail[i]: length of the longest proper prefix of piece[0..i] that is also its suffix.
  const fail = new Array<number>(piece.length).fill(0);
  for (let i = 1, k = 0; i < piece.length; i++) {
    while (k > 0 && (count.comparisons++, piece[i] !== piece[k])) k = fail[k - 1];
    count.comparisons++;
    if (piece[i] === piece[k]) k++;
    fail[i] = k;
  }
  for (let i = from, k = 0; i < end; i++) {
    while (k > 0 && (count.comparisons++, name[i] !== piece[k])) k = fail[k - 1];
    count.comparisons++;
    if (name[i] === piece[k]) k++;
    if (k === piece.length) return i - piece.length + 1;
  }
  return -1;
}
