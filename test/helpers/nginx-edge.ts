import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './free-port.js';

// deploy/nginx-edge.conf as shipped, run by Debian's nginx in a throw-away prefix on
// 127.0.0.1 and a free port, in front of the given gateways: only the lines the file marks
// "test:" are rewritten (paths, port, upstream servers, and an access log that says, for
// each request, whether it went to a gateway).

export const nginxAvailable = existsSync('/usr/sbin/nginx');

export interface NginxEdge {
  url: string;
  /** The access log: one line per request, "<uri> <cache status> <upstream addresses> <status>". */
  log: () => Promise<string[]>;
  stop: () => Promise<void>;
}

export async function startNginxEdge(gateways: string[]): Promise<NginxEdge> {
  const prefix = await mkdtemp(path.join(os.tmpdir(), 'nginx-edge-'));
  await mkdir(path.join(prefix, 'cache'));
  const port = await freePort();
  const shipped = await readFile(new URL('../../deploy/nginx-edge.conf', import.meta.url), 'utf8');
  const servers = gateways.map((g) => `        server ${new URL(g).host} max_fails=1 fail_timeout=5s;`).join('\n');
  const rewrite: Record<string, string> = {
    worker_processes: 'worker_processes 1;',
    pid: `pid ${prefix}/nginx.pid;`,
    error_log: `error_log ${prefix}/error.log warn;`,
    access_log: `log_format edge '$request_uri $upstream_cache_status "$upstream_addr" $status'; access_log ${prefix}/edge.log edge;`,
    proxy_cache_path: `proxy_cache_path ${prefix}/cache levels=1:2 keys_zone=hls:16m max_size=256m inactive=2m use_temp_path=off;`,
    proxy_temp_path: `proxy_temp_path ${prefix}/tmp;`,
    client_body_temp_path: `client_body_temp_path ${prefix}/body;`,
    resolver: '', // the test's node URLs are addresses
    listen: `listen 127.0.0.1:${port};`,
  };
  let conf = shipped.replace(/^(\s*)upstream gateways \{\s*# test: upstream\n[\s\S]*?\n\s*keepalive 32;/m, (_m, indent: string) => `${indent}upstream gateways {\n${servers}\n        keepalive 32;`);
  conf = conf.replace(/^(\s*).*# test: (\w+).*$/gm, (line, indent: string, key: string) => (key in rewrite ? `${indent}${rewrite[key]}` : line));
  for (const dir of ['tmp', 'body']) await mkdir(path.join(prefix, dir));
  await writeFile(path.join(prefix, 'nginx.conf'), conf);
  const proc: ChildProcess = spawn('/usr/sbin/nginx', ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-g', 'daemon off; master_process off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (ok) break;
    if (i > 50 || proc.exitCode !== null) throw new Error(`nginx did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    log: async () => (await readFile(path.join(prefix, 'edge.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean),
    stop: async () => {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
      await rm(prefix, { recursive: true, force: true });
    },
  };
}
