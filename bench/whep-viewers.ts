import { RTCPeerConnection, RTCRtpCodecParameters, SrtpAuthenticationError, useNACK, usePLI, useSdesMid, useTransportWideCC } from 'werift';
import { keepToConfiguredStun } from '../src/werift/stun-default.js';

// A process of WHEP viewers for the bench (bench/whep.ts): `count` werift peers, each
// offering recvonly H.264 (42e01f, packetization-mode=1) and Opus as a browser does (NACK,
// PLI, transport-cc), on 127.0.0.1 only, reporting once a second on stdout what they got.
// Run by the bench in processes of their own, so that the gateway's CPU is measured alone.
// Once connected, a viewer counts each SRTP packet and drops it instead of decrypting it
// (BENCH_WHEP_DECRYPT=1 keeps werift's whole receive path): werift took ~40 % of a core
// for 10 viewers' decryption, and 50 such viewers do not fit next to the gateway on 2
// cores. The gateway's side is the same either way: it encrypts and sends every packet to
// every viewer, and gets their RTCP (werift's receiver reports; DTLS, ICE consent).
//   node --import tsx bench/whep-viewers.ts <gateway url> <stream> <count>

const [url, stream, countArg] = process.argv.slice(2);
Error.stackTraceLimit = 0; // countOnly throws one per packet
const count = Number(countArg);

interface Viewer {
  pc: RTCPeerConnection;
  packets: number;
  bytes: number;
  location?: string;
  answeredAt?: number;
  firstVideoAt?: number;
}

async function watch(): Promise<Viewer> {
  const pc = new RTCPeerConnection({
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    iceServers: [],
    headerExtensions: { video: [useSdesMid(), useTransportWideCC()], audio: [useSdesMid(), useTransportWideCC()] },
    codecs: {
      video: [new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, payloadType: 102, rtcpFeedback: [useNACK(), usePLI()], parameters: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f' })],
      audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111, parameters: 'minptime=10;useinbandfec=1' })],
    },
  });
  const v: Viewer = { pc, packets: 0, bytes: 0 };
  for (const kind of ['video', 'audio'] as const) {
    const t = pc.addTransceiver(kind, { direction: 'recvonly' });
    t.onTrack.subscribe((track) =>
      track.onReceiveRtp.subscribe((rtp) => {
        v.packets++;
        v.bytes += rtp.payload.length + 12;
        if (kind === 'video') v.firstVideoAt ??= performance.now();
      }),
    );
  }
  keepToConfiguredStun(pc, []);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const timer = setTimeout(resolve, 5000);
    pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && (clearTimeout(timer), resolve()));
  });
  const res = await fetch(`${url}/whep/${stream}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription!.sdp });
  v.answeredAt = performance.now();
  const body = await res.text();
  if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${body}`);
  v.location = new URL(res.headers.get('Location')!, url).href;
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('viewer not connected after 15 s')), 15_000);
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') {
        clearTimeout(timer);
        if (process.env.BENCH_WHEP_DECRYPT !== '1') for (const dtls of new Set(pc.dtlsTransports)) countOnly(dtls, v);
        resolve();
      }
      if (s === 'failed') (clearTimeout(timer), reject(new Error('viewer connection failed')));
    });
  });
  return v;
}

/** SRTP packets are counted and dropped (werift drops a packet whose decryption throws this). */
function countOnly(dtls: RTCPeerConnection['dtlsTransports'][number], v: Viewer): void {
  const srtp = (dtls as unknown as { srtp: { decrypt: (data: Buffer) => Buffer } }).srtp;
  srtp.decrypt = (data) => {
    v.packets++;
    v.bytes += data.length;
    v.firstVideoAt ??= performance.now();
    throw new SrtpAuthenticationError('counted, not decrypted (bench)');
  };
}

const viewers: Viewer[] = [];
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function main(): Promise<void> {
  for (let i = 0; i < count; i += 5) {
    const batch = await Promise.all(Array.from({ length: Math.min(5, count - i) }, () => watch()));
    viewers.push(...batch);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const firstVideoMs = viewers.map((v) => (v.firstVideoAt !== undefined && v.answeredAt !== undefined ? Math.round(v.firstVideoAt - v.answeredAt) : -1));
  say({ ready: viewers.length, firstVideoMs });
  setInterval(() => say({ packets: viewers.map((v) => v.packets), bytes: viewers.reduce((s, v) => s + v.bytes, 0), cpu: process.cpuUsage() }), 1000);
}

async function stop(): Promise<void> {
  await Promise.all(viewers.map(async (v) => {
    if (v.location) await fetch(v.location, { method: 'DELETE' }).catch(() => undefined);
    await v.pc.close().catch(() => undefined);
  }));
  process.exit(0);
}

process.on('SIGTERM', () => void stop());
process.stdin.on('end', () => void stop()); // the bench went away
process.stdin.resume();
main().catch((e: unknown) => {
  say({ error: (e as Error).message });
  process.exit(1);
});
