// Watch page: plays the stream's HLS with hls.js in low-latency mode (or natively, as
// Safari does: it plays Low-Latency HLS by itself), waits while the publisher is away and
// picks the stream up again when it returns. It shows the latency of the picture on
// screen: now, against the EXT-X-PROGRAM-DATE-TIME of the moment shown (the gateway
// stamps each segment with when it received it), so a clock that differs from the
// gateway's by some seconds shows here as that much more or less.
import { authFetch, token, withToken } from './auth.js';

const $ = (id) => document.getElementById(id);
const name = decodeURIComponent(location.pathname.split('/').pop());
const src = withToken(`/hls/${encodeURIComponent(name)}/index.m3u8`);
const video = $('video');
$('title').textContent = name;
$('vlc').textContent = withToken(`${location.origin}/live/${name}.ts`);
$('hls').textContent = `${location.origin}${src}`;
$('rtp').textContent = `curl -X POST ${location.origin}/api/streams/${name}/outputs ${token() ? "-H 'Authorization: Bearer TOKEN' " : ''}-H 'Content-Type: application/json' -d '{"type":"rtp-mpegts","host":"YOUR_IP","port":5004}'`;
const status = (s) => { $('status').textContent = s; };
let hls;
let session;

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

function showLatency() {
  const at = video.paused ? undefined : playingDate();
  $('latency').textContent = at ? `${((Date.now() - at) / 1000).toFixed(2)} s` : '–';
}

async function live() {
  const res = await authFetch(`/api/streams/${encodeURIComponent(name)}`, { cache: 'no-store' }).catch(() => undefined);
  if (!res || !res.ok) return undefined;
  const s = await res.json();
  return s.state === 'live' ? s : undefined;
}

async function attach() {
  const s = await live();
  const playlist = s && (await fetch(src, { cache: 'no-store' }).catch(() => undefined));
  if (!s || !playlist || !playlist.ok) {
    status(session ? 'the publisher left; waiting for it to come back…' : 'waiting for the publisher…');
    return setTimeout(attach, 1000);
  }
  session = s.session;
  status('loading…');
  if (window.Hls && Hls.isSupported()) {
    hls?.destroy();
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
      hls.destroy();
      hls = undefined;
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

video.addEventListener('playing', () => status('playing'));
video.addEventListener('ended', () => { status('the stream ended; waiting for the publisher…'); setTimeout(attach, 1000); });
setInterval(catchUp, 200);
setInterval(showLatency, 500);
// A new publisher session under the same name: start over on its new playlist.
setInterval(async () => {
  const s = await live();
  if (s && session && s.session !== session) { session = s.session; attach(); }
}, 3000);
attach();
