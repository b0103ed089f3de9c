import { SignJWT } from 'jose';
import { GatewayProcess } from './gateway-process.js';
import { median, r0, r1, table } from './format.js';

// Scenario 6: what checking credentials costs a request. The same route (GET /api/streams,
// no streams, so the answer is tiny and the check dominates) is asked REQUESTS times in a
// row from one client: on an open gateway, then with a static token and with an HS256
// JWT. The time is the client's, per request, over loopback HTTP keep-alive.

const REQUESTS = Number(process.env.BENCH_AUTH_REQUESTS ?? 2000);
const TOKEN = 'bench-static-token-0001';
const SECRET = 'bench-jwt-secret-with-at-least-32-characters';

export interface AuthRow {
  credential: string;
  medianUs: number;
  p99Us: number;
  perSecond: number;
}

export interface AuthReport {
  requests: number;
  rows: AuthRow[];
}

async function measure(url: string, headers: Record<string, string>, label: string): Promise<AuthRow> {
  for (let i = 0; i < 200; i++) await (await fetch(url, { headers })).arrayBuffer(); // warm-up (JIT, sockets)
  const times: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < REQUESTS; i++) {
    const s = performance.now();
    const res = await fetch(url, { headers });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${label}: status ${res.status}`);
    times.push((performance.now() - s) * 1000);
  }
  const total = performance.now() - t0;
  times.sort((a, b) => a - b);
  return { credential: label, medianUs: r0(median(times)), p99Us: r0(times[Math.floor(times.length * 0.99)]), perSecond: r0((REQUESTS / total) * 1000) };
}

export async function authBench(nodeArgs: string[] = []): Promise<AuthReport> {
  const rows: AuthRow[] = [];
  const open = await GatewayProcess.start({}, nodeArgs);
  try {
    rows.push(await measure(`${open.url}/api/streams`, {}, 'none (auth off)'));
  } finally {
    await open.stop();
  }
  const secured = await GatewayProcess.start({
    AUTH_TOKENS: JSON.stringify([{ token: TOKEN, permissions: [{ action: 'read' }] }]),
    AUTH_JWT_SECRET: SECRET,
  }, nodeArgs);
  try {
    const jwt = await new SignJWT({ permissions: [{ action: 'read', path: '*' }] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
    rows.push(await measure(`${secured.url}/api/streams`, { Authorization: `Bearer ${TOKEN}` }, 'static token'));
    rows.push(await measure(`${secured.url}/api/streams`, { Authorization: `Bearer ${jwt}` }, 'JWT (HS256)'));
  } finally {
    await secured.stop();
  }
  return { requests: REQUESTS, rows };
}

export function printAuth(r: AuthReport): string[] {
  const base = r.rows[0]?.medianUs ?? 0;
  return [
    `-- 6. Cost of checking credentials (GET /api/streams, ${r.requests} requests in a row, one client, loopback keep-alive) --`,
    table(['credential', 'median µs', 'p99 µs', 'requests/s', 'added (median)'], r.rows.map((x) => [x.credential, x.medianUs, x.p99Us, x.perSecond, x === r.rows[0] ? '-' : `${r1(x.medianUs - base)} µs`])),
  ];
}
