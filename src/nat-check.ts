#!/usr/bin/env node
import { lookup } from 'node:dns/promises';
import { diagnose, formatReport } from './nat/behavior.js';

// `npm run nat-check -- stun:host:port [--local ADDRESS] [--json]`: what kind of NAT is
// this machine behind (RFC 5780), and what that means for publishing.

const USAGE = 'usage: npm run nat-check -- stun:HOST[:PORT] [--local ADDRESS] [--json]\n(the STUN server needs RFC 5780 support, e.g. coturn with two listening IPs)\n';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const target = args.find((a) => !a.startsWith('--') && args[args.indexOf(a) - 1] !== '--local');
  const localIndex = args.indexOf('--local');
  const local = localIndex >= 0 ? args[localIndex + 1] : undefined;
  const m = target ? /^(?:stun:)?([^:]+)(?::(\d+))?$/.exec(target) : null;
  if (!m) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  let address: string;
  try {
    address = (await lookup(m[1], { family: 4 })).address;
  } catch (e) {
    process.stderr.write(`error: cannot resolve STUN server host ${m[1]} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})\n`);
    process.exit(2);
  }
  const report = await diagnose({ address, port: Number(m[2] ?? 3478) }, local).catch((e: unknown) => {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    process.exit(1);
  });
  process.stdout.write(args.includes('--json') ? `${JSON.stringify(report)}\n` : `${formatReport(report)}\n`);
  process.exit(report.mapped ? 0 : 1);
}

void main();
