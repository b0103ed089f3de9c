import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onCleanup } from './cleanup.js';
import { log, r1, table } from './format.js';
import { sleep } from './gateway-process.js';
import { Replay, ReplayClock, type Clip } from './media.js';
import { sampleTree, treeCpuPercent, udpDrops, udpDropsDelta } from './proc.js';
import { publish, type BenchPublisher, type Signaller } from './publisher.js';

// Scenario 7, the anchor: the same werift publishers, replaying the same clip, into Janus
// (Debian's janus 1.1, VideoRoom) with each publisher rtp_forwarded, as an experienced
// user would build this gateway by hand; Janus's CPU per stream from the same run is the
// yardstick for the gateway's (scenario 2). It runs when `janus` is installed and the
// bench runs as root.
//
// Janus (libnice) gathers no candidate on loopback, so it runs in a network namespace of
// its own, joined to this one by a veth pair (10.77.0.1 here, 10.77.0.2 there): the
// publishers' media crosses only that pair. rtp_forward sends to a child process here
// that only drains the packets.

const JANUS_LIBS = '/usr/lib/x86_64-linux-gnu/janus';
const ROOM = 1234;
const NS = `bench-janus-${process.pid}`;
const HERE = '10.77.0.1';
const THERE = '10.77.0.2';
const API_PORT = 18088;

export interface JanusRow {
  n: number;
  connected: number;
  cpuPercent: number;
  cpuPerStream: number;
  rssMB: number;
  dropsPerSecond: number;
  /** Why this load could not be measured (the other loads still are). */
  error?: string;
}

export function janusAvailable(): string | undefined {
  if (!/Janus version/.test(spawnSync('janus', ['-V'], { encoding: 'utf8' }).stdout ?? '')) return 'janus is not installed (apt-get install janus)'; // its exit status is 1 even for -V
  if (process.getuid?.() !== 0) return 'needs root (network namespace)';
  return undefined;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore' });
}

function makeNamespace(): () => void {
  const remove = () => {
    spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    spawnSync('ip', ['link', 'del', 'bjanus0'], { stdio: 'ignore' });
  };
  remove();
  ip('netns', 'add', NS);
  ip('link', 'add', 'bjanus0', 'type', 'veth', 'peer', 'name', 'bjanus1');
  ip('link', 'set', 'bjanus1', 'netns', NS);
  ip('addr', 'add', `${HERE}/30`, 'dev', 'bjanus0');
  ip('link', 'set', 'bjanus0', 'up');
  ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${THERE}/30`, 'dev', 'bjanus1');
  ip('netns', 'exec', NS, 'ip', 'link', 'set', 'bjanus1', 'up');
  ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
  return remove;
}

/** Janus with only VideoRoom and the HTTP API, ICE on the namespace's veth only. */
async function startJanus(): Promise<{ proc: ChildProcess; url: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-janus-'));
  const others = ['audiobridge', 'duktape', 'echotest', 'lua', 'nosip', 'recordplay', 'sip', 'streaming', 'textroom', 'videocall', 'voicemail'].map((p) => `libjanus_${p}.so`).join(',');
  await writeFile(path.join(dir, 'janus.jcfg'), `general: { configs_folder = "${dir}" plugins_folder = "${JANUS_LIBS}/plugins" transports_folder = "${JANUS_LIBS}/transports" events_folder = "${JANUS_LIBS}/events" loggers_folder = "${JANUS_LIBS}/loggers" debug_level = 2 }
media: { rtp_port_range = "41000-44999" }
nat: { ice_enforce_list = "bjanus1" ignore_mdns = true }
plugins: { disable = "${others}" }
transports: { disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so" }
loggers: { disable = "libjanus_jsonlog.so" }
events: { broadcast = false }
`);
  await writeFile(path.join(dir, 'janus.transport.http.jcfg'), `general: { json = "compact" base_path = "/janus" http = true port = ${API_PORT} ip = "${THERE}" https = false }\nadmin: { admin_http = false }\n`);
  await writeFile(path.join(dir, 'janus.plugin.videoroom.jcfg'), `general: { lock_rtp_forward = false }\nroom-${ROOM}: { description = "bench" publishers = 500 bitrate = 0 fir_freq = 0 videocodec = "h264" audiocodec = "opus" h264_profile = "42e01f" }\n`);
  const removeNs = makeNamespace();
  // `ip netns exec` execs janus: the pid is Janus's own.
  const proc = spawn('ip', ['netns', 'exec', NS, 'janus', '-F', dir, '-C', path.join(dir, 'janus.jcfg')], { stdio: 'ignore' });
  const stop = async () => {
    proc.kill('SIGTERM');
    await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(5000)]);
    proc.kill('SIGKILL');
    removeNs();
    await rm(dir, { recursive: true, force: true });
  };
  const removeCleanup = onCleanup(stop);
  const url = `http://${THERE}:${API_PORT}/janus`;
  const deadline = Date.now() + 15_000;
  const answers = () => fetch(`${url}/info`, { signal: AbortSignal.timeout(2000) }).then(async (r) => (await r.body?.cancel(), r.ok)).catch(() => false);
  while (Date.now() < deadline && !(await answers())) await sleep(200);
  return { proc, url, stop: async () => (removeCleanup(), await stop()) };
}

async function janusPost<T>(url: string, body: Record<string, unknown>): Promise<T> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify({ transaction: Math.random().toString(36).slice(2), ...body }), signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as T;
}

type JanusEvent = { jsep?: { sdp: string }; plugindata?: { data?: { id?: number; error?: string } } };

/**
 * Janus's long poll: it brings the session's events and keeps the session alive, until
 * `stop` is aborted. Every failure ends here. When Janus stops, or destroys the session,
 * with a poll waiting, the response has begun and undici rejects its body with
 * "terminated" (cause: "other side closed"). That rejection used to come from r.json()
 * inside .then(onFulfilled, onRejected), whose onRejected covers fetch() only, in a loop
 * started with `void`: an unhandled rejection, which ended the bench right after scenario
 * 7 printed its figures. A failed poll also waits before the next one, so a gone Janus
 * is not polled in a tight loop.
 */
async function pollEvents(url: string, onEvents: (events: JanusEvent[]) => void, stop: AbortSignal): Promise<void> {
  while (!stop.aborted) {
    try {
      const r = await fetch(`${url}?maxev=5`, { signal: AbortSignal.any([stop, AbortSignal.timeout(40_000)]) });
      onEvents([(await r.json()) as JanusEvent | JanusEvent[]].flat());
    } catch {
      if (!stop.aborted) await sleep(200);
    }
  }
}

/** Joins the room as a publisher with the offer, waits for the answer, forwards both media to `ports()`. */
function janusSignaller(url: string, ports: () => [number, number]): Signaller {
  return async (offer, name) => {
    const session = (await janusPost<{ data?: { id: number } }>(url, { janus: 'create' })).data?.id;
    if (!session) return { status: 502, body: 'janus: no session' };
    const su = `${url}/${session}`;
    const events: JanusEvent[] = [];
    const stopPolling = new AbortController();
    const polling = pollEvents(su, (batch) => events.push(...batch), stopPolling.signal);
    // The poll is stopped (and awaited) before the session goes, so none is left waiting when Janus stops.
    const close = async () => {
      stopPolling.abort();
      await polling;
      await janusPost(su, { janus: 'destroy' }).catch(() => undefined);
    };
    try {
      return await joinAndForward(su, offer, name, events, ports, close);
    } catch (e) {
      await close(); // a failed request must not leave the poll running
      throw e;
    }
  };
}

/** Attaches to VideoRoom, joins with the offer, waits for the answer, forwards the media. */
async function joinAndForward(su: string, offer: string, name: string, events: JanusEvent[], ports: () => [number, number], close: () => Promise<void>): ReturnType<Signaller> {
  const handle = (await janusPost<{ data?: { id: number } }>(su, { janus: 'attach', plugin: 'janus.plugin.videoroom' })).data?.id;
  if (!handle) return { status: 502, body: 'janus: no handle', close };
  const hu = `${su}/${handle}`;
  await janusPost(hu, { janus: 'message', body: { request: 'joinandconfigure', room: ROOM, ptype: 'publisher', display: name }, jsep: { type: 'offer', sdp: offer } });
  const deadline = Date.now() + 15_000;
  while (!events.some((e) => e.jsep) && Date.now() < deadline) await sleep(50);
  const answer = events.find((e) => e.jsep)?.jsep;
  const id = events.find((e) => e.plugindata?.data?.id)?.plugindata?.data?.id;
  if (!answer || !id) return { status: 502, body: `janus: no answer (${JSON.stringify(events.slice(-2)).slice(0, 300)})`, close };
  const [videoPort, audioPort] = ports();
  const fwd = await janusPost<{ plugindata?: { data?: { error?: string } } }>(hu, {
    janus: 'message',
    body: { request: 'rtp_forward', room: ROOM, publisher_id: id, host: HERE, streams: [{ mid: '0', port: videoPort }, { mid: '1', port: audioPort }] },
  });
  if (fwd.plugindata?.data?.error) return { status: 502, body: `janus rtp_forward: ${fwd.plugindata.data.error}`, close };
  return { status: 201, body: answer.sdp, close };
}

/** A child process that binds pairs of UDP ports on `host` and drains them. */
async function startDrain(pairs: number, host: string): Promise<{ ports: number[]; stop: () => void }> {
  const child = spawn(process.execPath, ['-e', `
    const dgram = require('node:dgram'); const ports = []; let n = ${2 * pairs};
    for (let i = 0; i < ${2 * pairs}; i++) { const s = dgram.createSocket('udp4'); s.on('message', () => {});
      s.bind(0, '${host}', () => { ports.push(s.address().port); if (--n === 0) console.log(ports.join(',')); }); }
  `], { stdio: ['ignore', 'pipe', 'ignore'] });
  const removeCleanup = onCleanup(async () => void child.kill('SIGKILL'));
  const line = await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString())));
  return { ports: line.trim().split(',').map(Number), stop: () => (child.kill('SIGKILL'), removeCleanup()) };
}

export async function janusBench(loads: number[], clip: Clip, warmupSeconds: number, windowSeconds: number): Promise<JanusRow[]> {
  const rows: JanusRow[] = [];
  for (const n of loads) {
    const janus = await startJanus();
    const drain = await startDrain(n, HERE);
    const clock = new ReplayClock();
    const pubs: BenchPublisher[] = [];
    let next = 0;
    const signal = janusSignaller(janus.url, () => [drain.ports[next++], drain.ports[next++]]);
    try {
      for (let i = 0; i < n; i++) {
        const pub = await publish(janus.url, `janus${n}-${i + 1}`, { signal, iceAddress: HERE });
        if (pub.status !== 201) throw new Error(`janus publisher ${i + 1}: ${pub.errorText}`);
        pubs.push(pub);
        await pub.connected;
        const replay = new Replay(clip, pub.direct());
        replay.start();
        clock.add(replay);
      }
      await sleep(warmupSeconds * 1000);
      const pid = janus.proc.pid!;
      const [a, da] = [sampleTree(pid), udpDrops([pid])];
      await sleep(windowSeconds * 1000);
      const [b, db] = [sampleTree(pid), udpDrops([pid])];
      const cpu = treeCpuPercent(a, b).self;
      rows.push({ n, connected: pubs.length, cpuPercent: r1(cpu), cpuPerStream: r1(cpu / n), rssMB: r1(b.rss / 1e6), dropsPerSecond: r1(udpDropsDelta(da, db) / ((b.at - a.at) / 1000)) });
      log(`janus N=${n}: ${r1(cpu)} % of a core, ${r1(cpu / n)} % per stream`);
    } catch (e) {
      // One load that cannot be set up (the publishers themselves fail to connect at 50 on
      // 2 cores) keeps the figures of the others.
      const error = (e as Error).message;
      rows.push({ n, connected: pubs.length, cpuPercent: 0, cpuPerStream: 0, rssMB: 0, dropsPerSecond: 0, error });
      log(`janus N=${n}: not measured: ${error}`);
    } finally {
      clock.stop();
      await Promise.all(pubs.map((p) => p.close()));
      drain.stop();
      await janus.stop();
    }
  }
  return rows;
}

export function printJanus(rows: JanusRow[], gateway: { n: number; selfPerStream: number; treePerStream: number }[]): string[] {
  const ratio = (v: number, r: JanusRow) => (r.cpuPerStream > 0 ? ` (${r1(v / r.cpuPerStream)}x)` : '');
  return [
    '-- 7. Anchor: the same publishers into Janus 1.1 (VideoRoom + rtp_forward), same run (CPU % of one core) --',
    table(
      ['N', 'connected', 'Janus CPU%', 'Janus %/stream', 'Janus RSS MB', 'Janus drops/s', 'gateway %/stream (x Janus)', 'gateway+ffmpeg %/stream (x Janus)'],
      rows.map((r) => {
        const g = gateway.find((x) => x.n === r.n);
        if (r.error) return [r.n, r.connected, `not measured: ${r.error}`, '-', '-', '-', '-', '-'];
        return [r.n, r.connected, r.cpuPercent, r.cpuPerStream, r.rssMB, r.dropsPerSecond, g ? `${g.selfPerStream}${ratio(g.selfPerStream, r)}` : '-', g ? `${g.treePerStream}${ratio(g.treePerStream, r)}` : '-'];
      }),
    ),
  ];
}
