import type { Config } from '../config/schema.js';

// Whether the gateway needs credentials, and whether a configuration may run at all:
// pure functions of the configuration (the rest of the gateway asks these, not the
// Authorizer).

/** Whether an address is this machine only (then the gateway may run without credentials). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Why the gateway must not start with this configuration, if it must not. */
export function authProblem(config: Config): string | undefined {
  if (config.auth.mode === 'auto' && !hasCredentials(config) && !isLoopbackHost(config.http.host)) {
    return `the gateway would listen on ${config.http.host} with no credentials: anyone who reaches it could publish, watch and control it. Either configure credentials (auth.tokens, auth.jwt or auth.hook; AUTH_TOKENS=...), or set auth.mode: none (AUTH_MODE=none) to run it open knowingly`;
  }
  if (authEnabled(config) && config.http.corsOrigins?.includes('*')) {
    return 'http.corsOrigins "*" is only allowed while auth is off: list the origins of the pages that call the gateway';
  }
  return undefined;
}

/** Whether any form of credential is configured (tokens, JWT or the hook). */
function hasCredentials(config: Config): boolean {
  const auth = config.auth;
  return auth.tokens.length > 0 || auth.jwt !== undefined || auth.hook !== undefined;
}

export function authEnabled(config: Config): boolean {
  return config.auth.mode !== 'none' && hasCredentials(config);
}
