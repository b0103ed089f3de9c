import dgram from 'node:dgram';
import net from 'node:net';

// Ports for what a test starts, always asked of the operating system at the moment they
// are needed: a port made up from the process id collided with a port the system had
// handed out (werift's ICE sockets take any free one), and CI went red.

/** A TCP port free on 127.0.0.1 right now (for servers a test starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function bindUdp(port: number): Promise<dgram.Socket | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(undefined);
    });
    s.bind(port, '127.0.0.1', () => resolve(s));
  });
}

/** An even UDP port free on 127.0.0.1 with its odd neighbour (RTP and RTCP) free too. */
export async function freeUdpPort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const a = await bindUdp(0);
    if (!a) continue;
    const port = a.address().port;
    const even = port % 2 === 0 ? port : port + 1;
    const pair = [await bindUdp(even === port ? port + 1 : even), await bindUdp(even + 1)];
    a.close();
    for (const s of pair) s?.close();
    if (even === port ? pair[0] : pair[0] && pair[1]) return even;
  }
  throw new Error('no free UDP port pair on 127.0.0.1');
}

/** `count` consecutive UDP ports free on 127.0.0.1 right now (an ICE port range a test configures). */
export async function freeUdpRange(count: number): Promise<[number, number]> {
  for (let tries = 0; tries < 50; tries++) {
    const first = await freeUdpPort();
    const held = await Promise.all(Array.from({ length: count }, (_, i) => bindUdp(first + i)));
    for (const s of held) s?.close();
    if (held.every(Boolean) && first + count - 1 <= 65535) return [first, first + count - 1];
  }
  throw new Error(`no ${count} consecutive free UDP ports on 127.0.0.1`);
}
