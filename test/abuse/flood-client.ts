import http from 'node:http';
import WebSocket from 'ws';

// One flooding client (its own process, with its own file descriptors and event loop, as
// an attacker's machine): opens `count` connections of one kind to the gateway as fast as
// `concurrency` allows, spread over the given local addresses, keeps the ones the gateway
// accepts open and idle until it closes them or `holdMs` passes, and prints what happened
// as one JSON line.
//   argv: ws|http url count concurrency holdMs address[,address...] [bearer token]
// ws: anonymous WebSocket upgrades; http: GETs (e.g. an event stream) held open.

const [mode, url, countArg, concurrencyArg, holdArg, addressesArg, token] = process.argv.slice(2);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
const holdMs = Number(holdArg);
const addresses = addressesArg.split(',');

const result = { attempts: 0, opened: 0, maxOpen: 0, refused: {} as Record<string, number>, withRetryAfter: 0, errors: {} as Record<string, number>, closedByServer: {} as Record<string, number>, slowestAnswerMs: 0 };
const open = new Set<{ close: () => void }>();
let started = 0;
const bump = (o: Record<string, number>, k: string) => (o[k] = (o[k] ?? 0) + 1);

function answered(t0: number, status: number, retryAfter: string | string[] | undefined): void {
  result.slowestAnswerMs = Math.max(result.slowestAnswerMs, performance.now() - t0);
  if (status === 101 || status === 200) return;
  bump(result.refused, String(status));
  if (retryAfter) result.withRetryAfter++;
}

function opened(conn: { close: () => void }): void {
  result.opened++;
  open.add(conn);
  result.maxOpen = Math.max(result.maxOpen, open.size);
}

function attemptWs(localAddress: string): Promise<void> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress, handshakeTimeout: 10_000 });
    const conn = { close: () => ws.terminate() };
    let refused = false;
    ws.on('unexpected-response', (_req, res) => {
      refused = true;
      answered(t0, res.statusCode ?? 0, res.headers['retry-after']);
      res.resume();
      ws.terminate();
      resolve();
    });
    ws.on('open', () => {
      answered(t0, 101, undefined);
      opened(conn);
      resolve();
    });
    ws.on('close', (code) => {
      if (open.delete(conn)) bump(result.closedByServer, String(code));
    });
    ws.on('error', (e: NodeJS.ErrnoException) => {
      if (!refused) bump(result.errors, e.code ?? e.message);
      resolve();
    });
  });
}

function attemptHttp(localAddress: string): Promise<void> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.get(url, { localAddress, agent: false, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
      answered(t0, res.statusCode ?? 0, res.headers['retry-after']);
      if (res.statusCode !== 200) {
        res.resume();
        return resolve();
      }
      const conn = { close: () => req.destroy() };
      opened(conn);
      res.on('data', () => undefined);
      res.on('close', () => {
        if (open.delete(conn)) bump(result.closedByServer, 'closed');
      });
      resolve();
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      bump(result.errors, e.code ?? e.message);
      resolve();
    });
  });
}

async function main(): Promise<void> {
  const attempt = mode === 'ws' ? attemptWs : attemptHttp;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < count) {
        const i = started++;
        result.attempts++;
        await attempt(addresses[i % addresses.length]);
      }
    }),
  );
  const deadline = Date.now() + holdMs;
  while (open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const stillOpen = open.size;
  for (const c of open) c.close();
  process.stdout.write(`${JSON.stringify({ ...result, stillOpen })}\n`);
  process.exit(0);
}

void main();
