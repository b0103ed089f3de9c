import dgram from 'node:dgram';

// Loopback UDP ports for ffmpeg inputs. Each m-section gets an even RTP port and the
// odd port above it for RTCP (RFC 3550 §11), so ffmpeg's RTCP socket never clashes.
// Ports are handed out round-robin so a port just released (maybe still in TIME_WAIT in
// some tool) is not reused at once; a port another program holds is skipped. The round
// starts at a random place, so two gateways on one machine with the same range (tests
// run several in one process) do not both hand out its first port before either binds it.

export class PortRangeExhausted extends Error {
  constructor(min: number, max: number) {
    super(`no free UDP port pair left in ${min}-${max}`);
  }
}

export class PortAllocator {
  private readonly inUse = new Set<number>();
  private cursor: number;

  constructor(
    readonly min: number,
    readonly max: number,
    /** Checks that nobody else holds a port; injectable for unit tests. */
    private readonly isFree: (port: number) => Promise<boolean> = udpPortFree,
    /** Where the round starts (random by default; unit tests give one). */
    first?: number,
  ) {
    if (min % 2 !== 0) this.min = min + 1;
    if (this.max - this.min < 1) throw new Error(`port range ${min}-${max} holds no even/odd pair`);
    this.cursor = first ?? this.min + 2 * Math.floor(Math.random() * this.size);
  }

  get size(): number {
    return Math.floor((this.max - this.min + 1) / 2);
  }

  get used(): number {
    return this.inUse.size;
  }

  /** Reserves an even RTP port (RTCP is port + 1). */
  async allocate(): Promise<number> {
    for (let tries = 0; tries < this.size; tries++) {
      const port = this.cursor;
      this.cursor = port + 2 > this.max - 1 ? this.min : port + 2;
      if (this.inUse.has(port)) continue;
      this.inUse.add(port); // reserve before the async check so concurrent callers skip it
      if ((await this.isFree(port)) && (await this.isFree(port + 1))) return port;
      this.inUse.delete(port);
    }
    throw new PortRangeExhausted(this.min, this.max);
  }

  release(port: number): void {
    this.inUse.delete(port);
  }
}

/** True when a UDP socket can bind the port on loopback right now. */
export function udpPortFree(port: number, address = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, address, () => socket.close(() => resolve(true)));
  });
}

/**
 * True when every given UDP port is bound by some process, read from /proc/net/udp{,6}
 * (read-only, so it cannot race with ffmpeg's own bind). Used to learn when ffmpeg is
 * listening, so the first keyframe is not sent into a closed port. Where /proc is not
 * there (not Linux), answers true and callers fall back to their own delay.
 */
export async function udpPortsBound(ports: number[]): Promise<boolean> {
  const { readFile } = await import('node:fs/promises');
  let text = '';
  try {
    text = await readFile('/proc/net/udp', 'utf8');
    text += await readFile('/proc/net/udp6', 'utf8').catch(() => '');
  } catch {
    return true;
  }
  const bound = new Set<number>();
  for (const line of text.split('\n').slice(1)) {
    const local = line.trim().split(/\s+/)[1];
    if (!local) continue;
    const portHex = local.split(':').pop();
    if (portHex) bound.add(parseInt(portHex, 16));
  }
  return ports.every((p) => bound.has(p));
}
