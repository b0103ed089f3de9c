import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

// A real coturn for TURN tests, on 127.0.0.1 only, with the TURN REST API shared secret
// (use-auth-secret), relaying to loopback peers (the gateway in tests).

export const coturnAvailable = existsSync('/usr/bin/turnserver');

export interface Coturn {
  port: number;
  secret: string;
  stop: () => Promise<void>;
}

export async function startCoturn(port: number, opts: { listenIp?: string; relayIp?: string; extra?: string[]; netns?: string } = {}): Promise<Coturn> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'coturn-'));
  const secret = 'test-secret-' + Math.random().toString(36).slice(2);
  const args = [
    '-n', '--no-cli', '--no-tls', '--no-dtls', '--fingerprint',
    `--listening-ip=${opts.listenIp ?? '127.0.0.1'}`, `--relay-ip=${opts.relayIp ?? opts.listenIp ?? '127.0.0.1'}`,
    `--listening-port=${port}`, `--min-port=${port + 10}`, `--max-port=${port + 200}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=gateway-test',
    '--allow-loopback-peers', '--no-multicast-peers', `--pidfile=${dir}/turn.pid`, '--log-file=stdout', '--simple-log',
    ...(opts.extra ?? []),
  ];
  const cmd = opts.netns ? 'ip' : '/usr/bin/turnserver';
  const full = opts.netns ? ['netns', 'exec', opts.netns, '/usr/bin/turnserver', ...args] : args;
  const proc: ChildProcess = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout?.on('data', (d: Buffer) => {
    log += d.toString();
    if (process.env.COTURN_LOG) process.stderr.write(d);
  });
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  for (let i = 0; i < 50 && !/listener opened on|Total General servers/i.test(log); i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 300));
  return {
    port,
    secret,
    stop: async () => {
      proc.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
