// Watch page: plays the stream's HLS with hls.js (or natively, as Safari does), waits while
// the publisher is away and picks the stream up again when it returns.
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
    hls = new Hls({ liveSyncDurationCount: 2, manifestLoadingMaxRetry: 2 });
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
// A new publisher session under the same name: start over on its new playlist.
setInterval(async () => {
  const s = await live();
  if (s && session && s.session !== session) { session = s.session; attach(); }
}, 3000);
attach();
