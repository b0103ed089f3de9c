import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { WhipAnswered } from './whip-answered.js';
import { fileURLToPath } from 'node:url';

// A real non-browser WHIP publisher: GStreamer's webrtcbin (libnice ICE), driven by
// gst-whip.py, which encodes a live test pattern (x264, 1280x720@30) and a tone (Opus),
// POSTs its offer once ICE gathering is complete and reports what happens as JSON lines.
// Needs the system python with gi and the GStreamer plugins (see .ci/run).

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'gst-whip.py');
/** The system python: a pyenv one on PATH has no gi. */
const PYTHON = process.env.GST_PYTHON ?? '/usr/bin/python3';

export interface GstPublisherOptions {
  whipUrl: string;
  /** webrtcbin's bundle-policy: max-bundle puts `m=audio 0 … a=bundle-only` in the offer. */
  bundlePolicy: 'max-bundle' | 'max-compat' | 'balanced' | 'none';
  /** Transceiver direction (default sendonly, as GStreamer's WHIP sinks; webrtcbin's own default is sendrecv). */
  direction?: 'sendonly' | 'sendrecv';
  token?: string;
  width?: number;
  height?: number;
  fps?: number;
  kbps?: number;
  video?: boolean;
  audio?: boolean;
}

export interface GstEvent {
  event: string;
  /** Wall-clock seconds in the python process. */
  t: number;
  [k: string]: unknown;
}

export interface GstPublisher extends WhipAnswered {
  /** Everything the script reported, in order. */
  events: GstEvent[];
  /** Connection states webrtcbin went through (connection-state). */
  states: string[];
  proc: ChildProcess;
  /** Resolves when webrtcbin's connection-state is "connected" (rejects after 10 s or on failure). */
  connected: () => Promise<void>;
  /** Stops the pipeline; `delete` (default true) sends the WHIP DELETE first. Returns the DELETE's status. */
  stop: (opts?: { delete?: boolean }) => Promise<number | undefined>;
}

export async function startGstPublisher(opts: GstPublisherOptions): Promise<GstPublisher> {
  const args = [SCRIPT, '--url', opts.whipUrl, '--bundle-policy', opts.bundlePolicy, '--direction', opts.direction ?? 'sendonly'];
  if (opts.token) args.push('--token', opts.token);
  if (opts.width) args.push('--width', String(opts.width));
  if (opts.height) args.push('--height', String(opts.height));
  if (opts.fps) args.push('--fps', String(opts.fps));
  if (opts.kbps) args.push('--kbps', String(opts.kbps));
  if (opts.video === false) args.push('--no-video');
  if (opts.audio === false) args.push('--no-audio');
  // stdin stays open: its end (this process gone) stops the script too.
  const proc = spawn(PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const events: GstEvent[] = [];
  const states: string[] = [];
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const listeners = new Set<(e: GstEvent) => void>();
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let e: GstEvent;
    try {
      e = JSON.parse(line) as GstEvent;
    } catch {
      return;
    }
    events.push(e);
    if (e.event === 'connection-state') states.push(String(e.state));
    for (const l of listeners) l(e);
  });
  const next = (pred: (e: GstEvent) => boolean, what: string, ms: number): Promise<GstEvent> =>
    new Promise((resolve, reject) => {
      const seen = events.find(pred);
      if (seen) return resolve(seen);
      const timer = setTimeout(() => done(new Error(`gst-whip.py: no ${what} in ${ms} ms; stderr: ${stderr}`)), ms);
      const onEvent = (e: GstEvent) => pred(e) && done(undefined, e);
      const onExit = () => done(new Error(`gst-whip.py exited before ${what}; events: ${events.map((x) => x.event).join(',')}; stderr: ${stderr}`));
      function done(err?: Error, e?: GstEvent) {
        clearTimeout(timer);
        listeners.delete(onEvent);
        proc.off('exit', onExit);
        if (err) reject(err);
        else resolve(e!);
      }
      listeners.add(onEvent);
      proc.once('exit', onExit);
    });

  let statusEvent: GstEvent;
  try {
    statusEvent = await next((e) => e.event === 'status', 'WHIP answer', 15_000);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  const answeredAt = performance.now();
  const status = Number(statusEvent.status);
  const offerEvent = events.find((e) => e.event === 'offer');
  const answerEvent = status === 201 ? await next((e) => e.event === 'answer', 'answer', 2000) : undefined;
  const errorEvent = status === 201 ? undefined : await next((e) => e.event === 'error', 'error', 2000).catch(() => undefined);
  const connectedPromise = next((e) => e.event === 'connection-state' && (e.state === 'connected' || e.state === 'failed'), 'connection', 10_000).then((e) => {
    if (e.state !== 'connected') throw new Error(`webrtcbin connection ${String(e.state)}`);
  });
  connectedPromise.catch(() => undefined);
  let stopping: Promise<number | undefined> | undefined;
  return {
    status,
    offer: String(offerEvent?.sdp ?? ''),
    answer: String(answerEvent?.sdp ?? ''),
    location: statusEvent.location ? String(statusEvent.location) : undefined,
    errorText: errorEvent ? String(errorEvent.body ?? errorEvent.message) : undefined,
    answeredAt,
    events,
    states,
    proc,
    connected: () => connectedPromise,
    stop: ({ delete: del = true } = {}) => {
      stopping ??= (async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) return undefined;
        const deleted = del ? next((e) => e.event === 'deleted', 'DELETE', 5000).catch(() => undefined) : Promise.resolve(undefined);
        proc.stdin!.write(del ? 'delete\n' : 'stop\n');
        const d = await deleted;
        const killer = setTimeout(() => proc.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(killer);
        return d?.status === undefined || d.status === null ? undefined : Number(d.status);
      })();
      return stopping;
    },
  };
}
