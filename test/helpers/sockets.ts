import { readdir, readFile, readlink } from 'node:fs/promises';

// The sockets a process holds, read from /proc (Linux): its file descriptors name socket
// inodes, and /proc/net/{udp,udp6,tcp,tcp6} give each inode's local address.

export interface SocketInfo {
  protocol: 'udp' | 'udp6' | 'tcp' | 'tcp6';
  /** Dotted IPv4 or the IPv6 address as 32 hex digits. */
  address: string;
  port: number;
  /** TCP only: 0A = listening. */
  state: string;
}

function ipv4(hex: string): string {
  // /proc prints the address as a little-endian 32-bit number.
  return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
}

export async function socketsOf(pid: number): Promise<SocketInfo[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]);
  }
  const out: SocketInfo[] = [];
  for (const protocol of ['udp', 'udp6', 'tcp', 'tcp6'] as const) {
    const text = await readFile(`/proc/${pid}/net/${protocol}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9])) continue;
      const [addr, port] = f[1].split(':');
      out.push({ protocol, address: addr.length === 8 ? ipv4(addr) : addr, port: parseInt(port, 16), state: f[3] });
    }
  }
  return out;
}
