import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './free-port.js';

// A real RTMP server for push tests: Debian's nginx with libnginx-mod-rtmp, listening on
// 127.0.0.1 only, in a throw-away prefix. `available` says whether the packages are there.

const MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';
export const rtmpServerAvailable = existsSync('/usr/sbin/nginx') && existsSync(MODULE);

export interface RtmpServer {
  port: number;
  stop: () => Promise<void>;
}

export async function startRtmpServer(): Promise<RtmpServer> {
  const prefix = await mkdtemp(path.join(os.tmpdir(), 'nginx-rtmp-'));
  const port = await freePort();
  await writeFile(
    path.join(prefix, 'nginx.conf'),
    `load_module ${MODULE};
daemon off;
master_process off;
worker_processes 1;
error_log ${prefix}/error.log warn;
pid ${prefix}/nginx.pid;
events { worker_connections 64; }
rtmp {
  server {
    listen 127.0.0.1:${port};
    application live { live on; record off; }
  }
}
`,
  );
  const proc: ChildProcess = spawn('/usr/sbin/nginx', ['-p', prefix, '-c', path.join(prefix, 'nginx.conf')], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    stop: async () => {
      proc.kill('SIGKILL');
      await rm(prefix, { recursive: true, force: true });
    },
  };
}
