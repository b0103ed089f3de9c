// Watch page: plays the stream's HLS with hls.js in low-latency mode (or natively, as
// Safari does: it plays Low-Latency HLS by itself), or in real time over WebRTC (WHEP,
// POST /whep/<name>), falling back to HLS by itself when WebRTC does not connect. Shows
// the measured delay; waits while the publisher is away and picks the stream up again
// when it returns.
import { authFetch, authHeaders, token, withToken } from './auth.js';

const $ = (id) => document.getElementById(id);
const name = decodeURIComponent(location.pathname.split('/').pop());
const src = withToken(`/hls/${encodeURIComponent(name)}/index.m3u8`);
const video = $('video');
$('title').textContent = name;
$('vlc').textContent = withToken(`${location.origin}/live/${name}.ts`);
$('hls').textContent = `${location.origin}${src}`;
$('whep').textContent = `${location.origin}/whep/${name}`;
$('rtp').textContent = `curl -X POST ${location.origin}/api/streams/${name}/outputs ${token() ? "-H 'Authorization: Bearer TOKEN' " : ''}-H 'Content-Type: application/json' -d '{"type":"rtp-mpegts","host":"YOUR_IP","port":5004}'`;
const status = (s) => { $('status').textContent = s; };
const MODE_KEY = 'webrtc-rtp-gateway.watch-mode';
/** WebRTC not connected this long after the answer: HLS instead. */
const CONNECT_TIMEOUT_MS = 5000;
let mode = new URLSearchParams(location.search).get('mode') || localStorage.getItem(MODE_KEY) || 'hls';
$('mode').value = mode;
let hls;
let session;
let rtc; // { pc, resource }
/** Why real time did not work here, once it did not (HLS plays instead). */
let fellBack;

// Catching up with the live edge. hls.js plays Low-Latency HLS from PART-HOLD-BACK behind
// the newest part, but leaves it only to speed up when more than a second is buffered
// ahead (its maxLiveSyncPlaybackRate), which at 0.7 s behind never happens: each
// playback stayed wherever it had started (0.5-1 s apart from run to run, and after a
// stall, further behind). Here the page steers instead, every 200 ms: more than
// CATCH_UP_JUMP_S behind its target it jumps to the live sync position; more than
// CATCH_UP_FROM_S behind with some buffer to spend it plays up to 25 % faster (in
// proportion), and at normal speed again once within CATCH_UP_TO_S or low on buffer.
const CATCH_UP_FROM_S = 0.08;
const CATCH_UP_TO_S = 0.03;
const CATCH_UP_JUMP_S = 1.5;
const MAX_RATE = 1.25;

function catchUp() {
  if (!hls || video.paused || !hls.targetLatency || hls.latency === undefined) return;
  const behind = hls.latency - hls.targetLatency;
  const ahead = video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : 0;
  if (behind > CATCH_UP_JUMP_S && hls.liveSyncPosition && ahead > behind) video.currentTime = hls.liveSyncPosition;
  else if (behind > CATCH_UP_FROM_S && ahead > 0.3) video.playbackRate = Math.min(MAX_RATE, 1 + behind / 2);
  else if (behind < CATCH_UP_TO_S || ahead < 0.2) video.playbackRate = 1;
}

/** The wall-clock time of the picture on screen, from EXT-X-PROGRAM-DATE-TIME (hls.js, or Safari's getStartDate). */
function playingDate() {
  if (hls) return hls.playingDate?.getTime();
  const start = video.getStartDate?.().getTime();
  return start && Number.isFinite(start) ? start + video.currentTime * 1000 : undefined;
}

async function live() {
  const res = await authFetch(`/api/streams/${encodeURIComponent(name)}`, { cache: 'no-store' }).catch(() => undefined);
  if (!res || !res.ok) return undefined;
  const s = await res.json();
  return s.state === 'live' ? s : undefined;
}

function stop() {
  hls?.destroy();
  hls = undefined;
  if (rtc) {
    const { pc, resource } = rtc;
    rtc = undefined;
    pc.close();
    if (resource) fetch(resource, { method: 'DELETE', headers: authHeaders() }).catch(() => {});
  }
  video.removeAttribute('src');
  video.srcObject = null;
}

async function attach() {
  const s = await live();
  if (!s) {
    status(session ? 'the publisher left; waiting for it to come back…' : 'waiting for the publisher…');
    return setTimeout(attach, 1000);
  }
  session = s.session;
  stop();
  if (mode === 'webrtc' && !fellBack) return attachWebRtc();
  attachHls();
}

async function attachHls() {
  const playlist = await fetch(src, { cache: 'no-store' }).catch(() => undefined);
  if (!playlist || !playlist.ok) {
    status('waiting for the first segments…');
    return setTimeout(attach, 1000);
  }
  status(fellBack ? `real time (WebRTC) did not work here (${fellBack}); loading HLS…` : 'loading…');
  if (window.Hls && Hls.isSupported()) {
    // lowLatencyMode: parts, blocking playlist reload, PART-HOLD-BACK as the target (a
    // liveSyncDuration* setting would override it). A plain playlist (the hls output's
    // lowLatency off) plays two segments behind the edge. maxLiveSyncPlaybackRate 1:
    // hls.js's own catch-up off, the page's (catchUp) instead. liveSyncOnStallIncrease:
    // after a stall hls.js plays that much further behind (its default, 1 s, doubled the
    // latency for the rest of the session after a single hiccup).
    const lowLatency = (await playlist.text()).includes('#EXT-X-PART-INF');
    hls = new Hls({ lowLatencyMode: true, ...(lowLatency ? {} : { liveSyncDurationCount: 2 }), maxLiveSyncPlaybackRate: 1, liveSyncOnStallIncrease: 0.1, backBufferLength: 10, manifestLoadingMaxRetry: 2 });
    hls.on(Hls.Events.ERROR, (_e, d) => {
      if (!d.fatal) return;
      stop();
      status('stream interrupted; reconnecting…');
      setTimeout(attach, 1000);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = src;
    video.onerror = () => setTimeout(attach, 1000);
  } else {
    status('this browser cannot play HLS; use the VLC address below');
  }
}

/** WHEP: a recvonly offer with every candidate, the answer, the tracks in the <video>. */
async function attachWebRtc() {
  status('connecting in real time (WebRTC)…');
  const servers = await authFetch('/api/ice-servers').then((r) => (r.ok ? r.json() : []), () => []);
  const pc = new RTCPeerConnection({ iceServers: servers });
  rtc = { pc };
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.ontrack = (e) => { stream.addTrack(e.track); video.srcObject = stream; };
  const giveUp = (why) => {
    if (rtc?.pc !== pc) return;
    stop();
    fellBack = why;
    status(`real time (WebRTC) did not work here (${why}); playing HLS instead`);
    attach();
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && resolve());
      setTimeout(resolve, 2000);
    });
    const res = await authFetch(`/whep/${encodeURIComponent(name)}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
    const body = await res.text();
    if (res.status !== 201) return giveUp(`${res.status}: ${body.trim()}`);
    rtc.resource = new URL(res.headers.get('Location'), res.url || location.href).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
  } catch (e) {
    return giveUp(String(e.message || e));
  }
  // The gateway ends the session (the publisher left, the stream was removed) with a DTLS
  // close_notify: Chromium then closes the DTLS transport but keeps saying "connected".
  const ended = () => {
    if (rtc?.pc !== pc) return;
    stop();
    status('the publisher left; waiting for it to come back…');
    setTimeout(attach, 1000);
  };
  const dtls = pc.getReceivers()[0]?.transport;
  dtls?.addEventListener('statechange', () => dtls.state === 'closed' && ended());
  const timer = setTimeout(() => pc.connectionState !== 'connected' && giveUp(`not connected after ${CONNECT_TIMEOUT_MS / 1000} s`), CONNECT_TIMEOUT_MS);
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'connected') clearTimeout(timer);
    if (pc.connectionState === 'failed') giveUp('the connection failed');
    if (pc.connectionState === 'closed') ended();
  });
}

/**
 * The delay readout. WebRTC: how long ago the picture shown now reached the gateway
 * (getStats' estimatedPlayoutTimestamp, on the gateway's clock as its sender reports give
 * it), plus half the round trip; without it, the jitter buffer and half the round trip.
 * HLS: now against the EXT-X-PROGRAM-DATE-TIME of the moment shown (the gateway stamps
 * each segment with when it received it), so a clock that differs from the gateway's by
 * some seconds shows here as that much more or less. (hls.js's own estimate read about
 * 0.5 s less than the glass-to-glass delay measured.)
 */
async function measureDelay() {
  let ms;
  if (rtc?.pc.connectionState === 'connected') {
    let inbound, pair;
    (await rtc.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') inbound = r;
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
    });
    const rtt = (pair?.currentRoundTripTime ?? 0) * 1000;
    if (inbound?.estimatedPlayoutTimestamp) {
      const playout = inbound.estimatedPlayoutTimestamp - 2208988800000; // NTP ms to Unix ms
      const d = Date.now() - playout + rtt / 2;
      if (d > 0 && d < 10000) ms = d;
    }
    if (ms === undefined && inbound?.jitterBufferEmittedCount) ms = (inbound.jitterBufferDelay / inbound.jitterBufferEmittedCount) * 1000 + rtt / 2;
  } else if (!video.paused) {
    const at = playingDate();
    if (at) ms = Date.now() - at;
  }
  $('delay').textContent = ms === undefined ? '–' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
setInterval(measureDelay, 1000);

$('mode').addEventListener('change', () => {
  mode = $('mode').value;
  localStorage.setItem(MODE_KEY, mode);
  fellBack = undefined;
  attach();
});
video.addEventListener('playing', () => status(rtc ? 'playing in real time (WebRTC)' : fellBack ? `playing HLS (real time did not work here: ${fellBack})` : 'playing'));
video.addEventListener('ended', () => { status('the stream ended; waiting for the publisher…'); setTimeout(attach, 1000); });
setInterval(catchUp, 200);
// A new publisher session under the same name: start over on it.
// The stream gone from the API twice in a row while HLS is still attached: its publisher
// left, but the player may never reach an end (hls.js in low-latency mode can sit at the
// last part of an ended playlist without an "ended" event): wait for it again.
let missed = 0;
setInterval(async () => {
  const s = await live();
  missed = s ? 0 : missed + 1;
  if (s && session && s.session !== session) { session = s.session; attach(); }
  else if (!s && missed >= 2 && session && (hls || video.getAttribute('src'))) { stop(); attach(); }
}, 3000);
attach();
