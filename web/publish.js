// Publish page: camera, microphone or screen to the gateway over WebSocket signalling
// (trickle ICE) or WHIP, with a preview and live outgoing stats: what the browser really
// sends (it lowers size and frame rate when the network or the CPU cannot keep up), and
// why. The same figures go to the gateway every 2 s, for the dashboard.
//
// When the connection drops (Wi-Fi to LTE, a VPN coming up), the page restarts ICE in the
// same session after 2 s: a new offer over a new WebSocket (the old one usually went down
// with the network) or a WHIP PATCH. The stream, its outputs and its HLS playlist go on;
// viewers see a gap, not an end. "Dropped" is the state "disconnected" or "failed", or
// nothing at all from the gateway for 2 s (it sends congestion feedback every 50 ms):
// Chromium, measured, says "disconnected" only 6.5 s after its network went away, and
// the gateway gives up on a silent publisher after 5 s (ice.mediaTimeoutMs).
import { authFetch, openSocket, withToken } from './auth.js';

const $ = (id) => document.getElementById(id);
let pc;
let media;
let ws;
let whipResource;
let node; // in a cluster: the node this page's gateway redirected the stream to (its URL), else undefined
let statsTimer;
let reportWs; // WHIP mode: a WebSocket only for reporting stats to the gateway
let session; // { stream, id } of what is being published
let restartTimer;
let retiredWs; // the WebSocket a restart replaces, closed once the new one has its answer
let watchdog;
let heard; // { bytes, at }: the last time anything arrived from the gateway
/** How long the connection is dropped before the page restarts ICE, and how long it then gives each try. */
const RESTART_AFTER_MS = 2000;
const RESTART_RETRY_MS = 5000;

// The name rule is the input's pattern attribute (publish.html), written once for the page.
const NAME = new RegExp(`^(?:${$('name').pattern})$`);
const fromPath = location.pathname.match(/^\/publish\/([^/]+)$/);
if (fromPath && NAME.test(fromPath[1])) $('name').value = fromPath[1];
// Joining a call: ?call=panel (or the Call field) publishes as panel-<name>, the name a
// composite of "panel-*" takes in; /publish/panel-anna does the same by itself.
const callParam = new URLSearchParams(location.search).get('call');
if (callParam && NAME.test(callParam)) $('call').value = callParam;
/** The stream name to publish: the name, or <call>-<name> when a call is given. */
function streamName() {
  const me = $('name').value.trim();
  const call = $('call').value.trim();
  return call ? `${call}-${me}` : me;
}
const params = new URLSearchParams(location.search);
if (params.get('signalling') === 'whip') $('signalling').value = 'whip';

function state(s) { $('state').textContent = s; $('state').className = `state-${s}`; }
function message(text, kind = 'error') {
  const el = $('message');
  el.hidden = !text;
  el.textContent = text || '';
  el.className = `msg ${kind}`;
}

/**
 * Sections of our offer the gateway's answer rejected (port 0), with the reason it gives
 * as the section's title (i=): e.g. a microphone codec it cannot take. Shown, not hidden.
 */
function rejectedIn(answer) {
  return answer.split(/\r?\n(?=m=)/).slice(1).flatMap((section) => {
    const m = /^m=(\w+) (\d+)/.exec(section);
    if (!m || m[2] !== '0') return [];
    const why = /^i=(.*)$/m.exec(section)?.[1];
    return [`${m[1]}${why ? `: ${why}` : ''}`];
  });
}

async function applyAnswer(sdp) {
  await pc.setRemoteDescription({ type: 'answer', sdp });
  const rejected = rejectedIn(sdp);
  if (rejected.length) message(`The gateway left out part of what this page sends: ${rejected.join('; ')}`);
}

async function listDevices() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const [kind, select] of [['videoinput', $('camera')], ['audioinput', $('mic')]]) {
      const chosen = select.value;
      const fixed = [...select.options].filter((o) => o.dataset.fixed !== undefined);
      // Before permission is given, devices have no id or label: list them later.
      const found = devices.filter((d) => d.kind === kind && d.deviceId && d.deviceId !== 'default');
      select.replaceChildren(...fixed, ...found.map((d, i) => new Option(d.label || `${kind === 'videoinput' ? 'camera' : 'microphone'} ${i + 1}`, d.deviceId)));
      if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
    }
  } catch { /* not available: the defaults are used */ }
}

async function getMedia() {
  const mic = $('mic').value;
  const audio = mic === 'none' ? false : mic ? { deviceId: { exact: mic } } : true;
  if ($('source').value === 'screen') {
    const screen = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 30 }, audio: false });
    if (audio) {
      const a = await navigator.mediaDevices.getUserMedia({ audio });
      a.getAudioTracks().forEach((t) => screen.addTrack(t));
    }
    return screen;
  }
  const cam = $('camera').value;
  return navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 }, ...(cam ? { deviceId: { exact: cam } } : {}) },
    audio,
  });
}

function explainMediaError(e) {
  if (e.name === 'NotAllowedError') return 'Camera, microphone or screen access was denied. Allow it in the browser (address bar icon) and try again.';
  if (e.name === 'NotFoundError') return 'No camera or microphone found. Pick another source or choose "no audio".';
  if (e.name === 'NotReadableError') return 'The camera or microphone is in use by another program.';
  if (!window.isSecureContext) return 'The camera needs a secure page: open the gateway over https:// or on localhost.';
  return `Could not open the media: ${e.message}`;
}

async function newPeer() {
  // The gateway's STUN/TURN servers (with fresh TURN credentials); ?relay forces TURN.
  const iceServers = await authFetch('/api/ice-servers').then((r) => r.json()).catch(() => []);
  const p = new RTCPeerConnection({ iceServers, iceTransportPolicy: params.has('relay') ? 'relay' : 'all' });
  for (const track of media.getTracks()) {
    const t = p.addTransceiver(track, { direction: 'sendonly' });
    if (track.kind === 'video' && RTCRtpSender.getCapabilities) {
      // Ask for H.264 first: the gateway copies it untouched (VP8 would be refused).
      const codecs = RTCRtpSender.getCapabilities('video').codecs;
      const h264 = codecs.filter((c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
      if (h264.length) t.setCodecPreferences([...h264, ...codecs.filter((c) => !h264.includes(c))]);
    }
  }
  p.onconnectionstatechange = () => {
    state(p.connectionState);
    if (p.connectionState === 'disconnected' || p.connectionState === 'failed') restartTimer ??= setTimeout(() => restartIce(p), RESTART_AFTER_MS);
  };
  return p;
}

/**
 * Every 500 ms: has anything come from the gateway in the last RESTART_AFTER_MS? If not,
 * the connection dropped. Once it comes again after a restart, the connection is back (a
 * restart begun while Chromium still said "connected" may bring no state change at all).
 */
async function checkHeard() {
  const p = pc;
  if (!p || !session) return;
  let bytes;
  (await p.getStats()).forEach((r) => { if (r.type === 'transport' && r.bytesReceived !== undefined) bytes = r.bytesReceived; });
  const now = performance.now();
  if (bytes === undefined || !heard || bytes !== heard.bytes) {
    const back = heard !== undefined && bytes !== undefined && $('state').textContent === 'restarting' && p.connectionState === 'connected';
    heard = { bytes, at: now };
    if (back) {
      clearTimeout(restartTimer);
      restartTimer = undefined;
      state('connected');
    }
    return;
  }
  if (!restartTimer && now - heard.at >= RESTART_AFTER_MS) restartIce(p);
}

/** The connection dropped: ICE restarts in the same session (and again every RESTART_RETRY_MS until it is back). */
async function restartIce(p) {
  restartTimer = undefined;
  if (p !== pc || !session) return;
  const silent = heard && performance.now() - heard.at >= RESTART_AFTER_MS;
  if (!silent && !['disconnected', 'failed'].includes(p.connectionState)) return;
  heard = undefined;
  state('restarting');
  restartTimer = setTimeout(() => restartIce(p), RESTART_RETRY_MS);
  try {
    p.restartIce();
    const gathered = gatheringDone(p); // before the offer: the state is still "complete" from the last time
    await p.setLocalDescription(await p.createOffer());
    if (whipResource) await restartWhip(p, gathered);
    else await restartWs(p);
  } catch (e) {
    message(`Reconnecting to the gateway: ${e.message}. Trying again.`, 'info');
  }
}

/** A restart over a new WebSocket, which takes the session over from the old one. */
async function restartWs(p) {
  const fresh = openSocket(node);
  await new Promise((resolve, reject) => {
    fresh.onopen = resolve;
    fresh.onerror = () => reject(new Error('the gateway cannot be reached'));
  });
  if (p !== pc) return fresh.close();
  retiredWs = ws;
  if (retiredWs) retiredWs.onclose = null;
  ws = fresh;
  wireSocket(fresh);
  fresh.send(JSON.stringify({ type: 'restart', stream: session.stream, session: session.id, sdp: p.localDescription.sdp }));
}

/** A restart over WHIP (RFC 9725 §4.3.2): the new ICE lines in a PATCH, the gateway's in its 200. */
async function restartWhip(p, gathered) {
  await gathered;
  const res = await authFetch(whipResource, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '*' }, body: iceFragmentOf(p.localDescription.sdp) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`the gateway answered ${res.status}: ${body.trim()}`);
  if (p === pc) await p.setRemoteDescription({ type: 'answer', sdp: withIce(p.remoteDescription.sdp, body) });
}

/** The ICE lines of an SDP's first section (the bundle's), as an RFC 8840 fragment. */
function iceFragmentOf(sdp) {
  const lines = sdp.split(/\r?\n/);
  const start = lines.findIndex((l) => l.startsWith('m='));
  const next = lines.findIndex((l, i) => i > start && l.startsWith('m='));
  const section = lines.slice(start, next < 0 ? undefined : next);
  const first = (prefix) => section.find((l) => l.startsWith(prefix)) ?? lines.find((l) => l.startsWith(prefix));
  return [section[0], first('a=mid:'), first('a=ice-ufrag:'), first('a=ice-pwd:'), ...section.filter((l) => l.startsWith('a=candidate:')), 'a=end-of-candidates', ''].join('\r\n');
}

/** `sdp` with the credentials and candidates of an ICE fragment: new credentials wherever it has them, the candidates on the first section. */
function withIce(sdp, fragment) {
  const get = (name) => new RegExp(`^a=${name}:(.*)$`, 'm').exec(fragment)?.[1];
  const ufrag = get('ice-ufrag');
  const pwd = get('ice-pwd');
  const candidates = [...fragment.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')), 'a=end-of-candidates'];
  const out = [];
  let sections = 0;
  for (const line of sdp.split(/\r?\n/)) {
    if (!line || line.startsWith('a=candidate:') || line === 'a=end-of-candidates') continue;
    if (line.startsWith('m=') && sections++ === 1) out.push(...candidates);
    out.push(line.startsWith('a=ice-ufrag:') ? `a=ice-ufrag:${ufrag}` : line.startsWith('a=ice-pwd:') ? `a=ice-pwd:${pwd}` : line);
  }
  if (sections === 1) out.push(...candidates);
  return `${out.join('\r\n')}\r\n`;
}

/** Resolves when the next gathering completes (or after `ms`). */
function gatheringDone(p, ms = 2000) {
  return new Promise((resolve) => {
    const done = () => {
      if (p.iceGatheringState !== 'complete') return;
      p.removeEventListener('icegatheringstatechange', done);
      resolve();
    };
    p.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });
}

/** What the gateway says on the signalling WebSocket. */
function wireSocket(socket) {
  socket.onclose = () => { if (pc && socket === ws) { state('disconnected'); message('The connection to the gateway closed.'); } };
  socket.onmessage = async (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === 'answer') {
      session = { stream: msg.stream, id: msg.session };
      await applyAnswer(msg.sdp);
      retiredWs?.close();
      retiredWs = undefined;
    } else if (msg.type === 'candidate') await pc?.addIceCandidate(msg.candidate || null).catch(() => {});
    else if (msg.type === 'error') { message(msg.code === 'stream-busy' ? `The name "${streamName()}" is already being published. Pick another name.` : msg.message); stop(false); }
    else if (msg.type === 'redirect') {
      // A node of a cluster with no room: publish on the node it names (same offer, its own WebSocket).
      // The old socket says nothing more (a candidate it still gets would be refused there).
      node = msg.url;
      message(`This gateway is full: publishing on ${new URL(msg.url).host}`, 'info');
      socket.onmessage = null;
      socket.onclose = null;
      socket.close();
      await publishWs(msg.stream, true).catch(() => { message(`The gateway at ${msg.url} cannot be reached.`); stop(false); });
    } else if (msg.type === 'unpublished') { message(`The gateway ended the stream: ${msg.reason}`, 'info'); stop(false); }
  };
}

/** `again`: the same offer once more (to the node a full one named), with the candidates gathered so far. */
async function publishWs(name, again = false) {
  ws = openSocket(node);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('unreachable'));
  });
  wireSocket(ws);
  pc.onicecandidate = (e) => ws?.readyState === 1 && ws.send(JSON.stringify({ type: 'candidate', candidate: e.candidate ? e.candidate.toJSON() : null }));
  if (!again) await pc.setLocalDescription(await pc.createOffer());
  ws.send(JSON.stringify({ type: 'publish', stream: name, sdp: pc.localDescription.sdp }));
}

async function publishWhip(name) {
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => {
    if (pc.iceGatheringState === 'complete') return r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
    setTimeout(r, 2000);
  });
  let res;
  try {
    res = await authFetch(`/whip/${encodeURIComponent(name)}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
  } catch {
    throw new Error('unreachable');
  }
  const body = await res.text();
  if (res.status === 409) throw new Error(`The name "${name}" is already being published. Pick another name.`);
  if (res.status !== 201) throw new Error(`The gateway refused the stream (${res.status}): ${body.trim()}`);
  whipResource = new URL(res.headers.get('Location'), location.href).href;
  session = { stream: name, id: whipResource.split('/').pop() };
  await applyAnswer(body);
}

async function start() {
  const name = streamName();
  if (!NAME.test(name)) return message('The stream name may use letters, digits, "_" and "-" (up to 64).');
  message('');
  $('start').disabled = true;
  try {
    media = await getMedia();
  } catch (e) {
    $('start').disabled = false;
    return message(explainMediaError(e));
  }
  $('preview').srcObject = media;
  listDevices();
  pc = await newPeer();
  state('connecting');
  try {
    if ($('signalling').value === 'whip') await publishWhip(name);
    else await publishWs(name);
  } catch (e) {
    message(e.message === 'unreachable' ? 'The gateway cannot be reached. Is it running, and is this the right address?' : e.message);
    return stop(false);
  }
  $('stop').disabled = false;
  showLinks(name);
  statsTimer = setInterval(updateStats, 1000);
  watchdog = setInterval(checkHeard, 500);
}

function showLinks(name) {
  const base = location.origin;
  $('watch').href = `/watch/${name}`;
  $('watch').textContent = `${base}/watch/${name}`;
  $('vlc').textContent = withToken(`${base}/live/${name}.ts`);
  $('hls').textContent = withToken(`${base}/hls/${name}/index.m3u8`);
  $('links').hidden = false;
}

const LIMITS = {
  bandwidth: 'The picture is smaller or sharper-edged than the camera’s because the network (as the browser estimates it) cannot carry more. It grows again as the estimate rises.',
  cpu: 'This computer cannot encode the full picture in time: the browser lowers its size or frame rate. Close other programs or choose a smaller camera size.',
  other: 'The browser limits the picture for another reason.',
};

let last;
let tick = 0;
async function updateStats() {
  if (!pc) return;
  const report = await pc.getStats();
  const byId = new Map([...report.values()].map((r) => [r.id, r]));
  const sent = {};
  for (const r of report.values()) {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      const pair = byId.get(r.selectedCandidatePairId);
      if (pair?.availableOutgoingBitrate) sent.availableKbps = Math.round(pair.availableOutgoingBitrate / 1000);
    }
    if (r.type !== 'outbound-rtp') continue;
    const codec = byId.get(r.codecId);
    if (r.kind === 'video') {
      $('codec').textContent = codec ? codec.mimeType.replace('video/', '') : '–';
      if (last) sent.bitrateKbps = Math.round(((r.bytesSent - last.bytes) * 8) / (r.timestamp - last.t));
      last = { bytes: r.bytesSent, t: r.timestamp };
      if (r.frameWidth) Object.assign(sent, { frameWidth: r.frameWidth, frameHeight: r.frameHeight });
      if (r.framesPerSecond !== undefined) sent.framesPerSecond = r.framesPerSecond;
      if (r.targetBitrate) sent.targetKbps = Math.round(r.targetBitrate / 1000);
      if (r.qualityLimitationReason) sent.qualityLimitationReason = r.qualityLimitationReason;
    } else if (r.kind === 'audio') {
      $('audioCodec').textContent = codec ? codec.mimeType.replace('audio/', '') : '–';
    }
  }
  const kbit = (v) => (v === undefined ? '–' : v >= 1000 ? `${(v / 1000).toFixed(1)} Mbit/s` : `${v} kbit/s`);
  $('bitrate').textContent = kbit(sent.bitrateKbps);
  $('fps').textContent = sent.framesPerSecond ?? '–';
  $('resolution').textContent = sent.frameWidth ? `${sent.frameWidth}×${sent.frameHeight}` : '–';
  $('target').textContent = kbit(sent.targetKbps);
  $('available').textContent = kbit(sent.availableKbps);
  const why = sent.qualityLimitationReason;
  $('limited').textContent = !why ? '–' : why === 'none' ? 'nothing' : why;
  $('limited').className = why && why !== 'none' ? 'state-failed' : '';
  $('limit').hidden = !why || why === 'none';
  $('limit').textContent = LIMITS[why] ?? '';
  if (++tick % 2 === 0) reportToGateway(sent);
}

/** The gateway shows these figures on its dashboard (WebSocket; WHIP mode names its session). */
function reportToGateway(stats) {
  if (ws?.readyState === 1) return ws.send(JSON.stringify({ type: 'sender-stats', stats }));
  if (!whipResource) return;
  const [, stream, session] = new URL(whipResource).pathname.match(/^\/whip\/([^/]+)\/([^/]+)$/) ?? [];
  if (!session) return;
  if (!reportWs) {
    reportWs = openSocket(node);
    reportWs.onclose = () => { reportWs = undefined; };
  }
  if (reportWs.readyState === 1) reportWs.send(JSON.stringify({ type: 'sender-stats', stream, session, stats }));
}

async function stop(sendBye = true) {
  clearInterval(statsTimer);
  clearInterval(watchdog);
  heard = undefined;
  clearTimeout(restartTimer);
  restartTimer = undefined;
  session = undefined;
  node = undefined;
  retiredWs?.close();
  retiredWs = undefined;
  if (sendBye) {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: 'unpublish' }));
    if (whipResource) await authFetch(whipResource, { method: 'DELETE' }).catch(() => {});
  }
  const p = pc;
  pc = undefined;
  ws?.close();
  ws = undefined;
  reportWs?.close();
  reportWs = undefined;
  whipResource = undefined;
  $('limit').hidden = true;
  last = undefined;
  p?.close();
  media?.getTracks().forEach((t) => t.stop());
  $('preview').srcObject = null;
  $('start').disabled = false;
  $('stop').disabled = true;
  state('idle');
}

$('start').addEventListener('click', start);
$('stop').addEventListener('click', () => stop(true));
$('source').addEventListener('change', () => { $('camera').disabled = $('source').value === 'screen'; });
listDevices();
