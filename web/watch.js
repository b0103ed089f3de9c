// Watch page: plays the stream's HLS with hls.js (or natively, as Safari does), or in real
// time over WebRTC (WHEP, POST /whep/<name>), falling back to HLS by itself when WebRTC
// does not connect. Shows the measured delay; waits while the publisher is away and picks
// the stream up again when it returns.
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
    hls = new Hls({ liveSyncDurationCount: 2, manifestLoadingMaxRetry: 2 });
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
 * HLS: hls.js's estimate of how far behind the live edge it plays.
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
  } else if (hls && Number.isFinite(hls.latency)) {
    ms = hls.latency * 1000;
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
// A new publisher session under the same name: start over on it.
setInterval(async () => {
  const s = await live();
  if (s && session && s.session !== session) { session = s.session; attach(); }
}, 3000);
attach();
