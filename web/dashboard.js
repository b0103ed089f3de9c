// Dashboard: live streams (tracks, bitrate and loss graphs over the last minutes, outputs
// with start/stop buttons), calls (composites of ticked streams), recordings, and gateway
// health. Stream data arrives every second over the WebSocket feed; recordings and health
// are polled. In a cluster the nodes are polled too (their load, state and streams), and
// the other nodes' streams are shown with this node's (their buttons act through this
// node, which forwards).
import { authFetch, openSocket, withToken } from './auth.js';

const $ = (id) => document.getElementById(id);
const HISTORY = 300; // seconds of graph
const history = new Map(); // stream -> [{t, kbps, lost}]
let lastStreams = [];
let remoteStreams = []; // other nodes' streams, from the last /api/cluster/nodes

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  e.append(...children.filter((c) => c !== undefined && c !== null));
  return e;
}

function message(text) {
  $('message').hidden = !text;
  $('message').textContent = text || '';
}

async function api(method, path, body) {
  const res = await authFetch(path, { method, headers: body ? { 'Content-Type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  if (!res.ok) {
    const text = (await res.text()).trim();
    message(`${method} ${path}: ${res.status} ${text}`);
    throw new Error(text);
  }
  message('');
  return res.status === 204 ? undefined : res.json();
}

const startButtons = [
  ['HLS', 'hls', () => ({})],
  ['MPEG-TS (VLC)', 'mpegts-http', () => ({})],
  ['Record', 'record', () => ({})],
  ['RTP forward', 'rtp-mpegts', () => {
    const target = prompt('Send MPEG-TS over RTP to host:port (open in VLC as rtp://@host:port)', '127.0.0.1:5004');
    if (!target) return undefined;
    const [host, port] = target.split(':');
    return { host, port: Number(port) };
  }],
  ['Push (SRT/RTMP/UDP)', 'push', () => {
    const url = prompt('Push to URL (srt://, rtmp://, rtmps:// or udp://)');
    if (!url) return undefined;
    const scheme = url.split(':')[0];
    return { type: scheme === 'rtmps' ? 'rtmp' : scheme, url };
  }],
];

function graph(points) {
  const c = el('canvas', { class: 'graph', width: 1000, height: 56, role: 'img', 'aria-label': 'bitrate (blue) and packet loss (red) over the last minutes' });
  const g = c.getContext('2d');
  const max = Math.max(100, ...points.map((p) => p.kbps));
  const x = (i) => (i / (HISTORY - 1)) * c.width;
  const off = HISTORY - points.length;
  g.fillStyle = '#5d6470';
  g.font = '11px system-ui, sans-serif';
  g.fillText(`${Math.round(max)} kbit/s · last ${HISTORY / 60} min`, 6, 15);
  g.strokeStyle = '#d9dce1';
  g.strokeRect(0.5, 0.5, c.width - 1, c.height - 1);
  g.strokeStyle = '#0b63ce';
  g.beginPath();
  points.forEach((p, i) => g[i ? 'lineTo' : 'moveTo'](x(i + off), c.height - (p.kbps / max) * (c.height - 4) - 2));
  g.stroke();
  g.fillStyle = '#b3261e';
  points.forEach((p, i) => p.lost > 0 && g.fillRect(x(i + off), c.height - Math.min(c.height, p.lost * 4), 2, Math.min(c.height, p.lost * 4)));
  return c;
}

function renderStreams(local) {
  const streams = [...local, ...remoteStreams.filter((r) => !local.some((s) => s.name === r.name))];
  lastStreams = local;
  $('nostreams').hidden = streams.length > 0;
  const now = Date.now();
  for (const s of streams) {
    const h = history.get(s.name) ?? [];
    const kbps = s.tracks.reduce((sum, t) => sum + t.bitrateKbps, 0);
    const lostTotal = s.tracks.reduce((sum, t) => sum + t.lost, 0);
    const prev = h.at(-1);
    h.push({ t: now, kbps, lostTotal, lost: prev ? Math.max(0, lostTotal - prev.lostTotal) : 0 });
    while (h.length > HISTORY) h.shift();
    history.set(s.name, h);
  }
  for (const name of history.keys()) if (!streams.some((s) => s.name === name)) history.delete(name);
  $('streams').replaceChildren(...streams.map(streamCard));
}

function streamCard(s) {
  const tracks = el('table', {},
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Track'), el('th', { scope: 'col' }, 'Codec'), el('th', { scope: 'col' }, 'Bitrate'), el('th', { scope: 'col', class: 'hide-sm' }, 'Packets'), el('th', { scope: 'col', class: 'hide-sm' }, 'Lost'))),
    el('tbody', {}, ...s.tracks.map((t) => el('tr', {},
      el('td', {}, t.kind),
      el('td', {}, `${t.codec}${t.width ? ` ${t.width}×${t.height}` : ''}${t.fps !== undefined ? ` ${t.fps} fps` : ''}${t.kind === 'audio' ? ` ${t.channels === 2 ? 'stereo' : 'mono'}` : ''}`, keyframeNote(t)),
      el('td', {}, `${t.bitrateKbps} kbit/s`),
      el('td', { class: 'hide-sm' }, String(t.packets)),
      el('td', { class: 'hide-sm' }, String(t.lost))))));
  const outputs = el('table', {},
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Output'), el('th', { scope: 'col' }, 'State'), el('th', { scope: 'col', class: 'hide-sm' }, 'Links'), el('th', { scope: 'col' }, ''))),
    el('tbody', {}, ...s.outputs.map((o) => el('tr', {},
      el('td', {}, o.type),
      el('td', {}, el('span', { class: `state-${o.state}`, title: o.error || '' }, o.state), o.restarts ? ` (${o.restarts} restarts)` : ''),
      el('td', { class: 'hide-sm' }, ...Object.entries(o.urls || {}).map(([k, u]) => el('div', {}, `${k}: `, u.startsWith('/') ? el('a', { href: withToken(u) }, u) : el('span', { class: 'url' }, u)))),
      el('td', {}, el('button', { type: 'button', class: 'danger', 'aria-label': `stop ${o.type} of ${s.name}`, onclick: () => api('DELETE', `/api/streams/${s.name}/outputs/${o.id}`) }, 'Stop'))))));
  const actions = el('div', { class: 'actions', role: 'group', 'aria-label': `start outputs for ${s.name}` },
    ...startButtons.map(([label, type, params]) => el('button', {
      type: 'button', class: 'secondary',
      onclick: async () => {
        const p = params();
        if (!p) return;
        if (type === 'mpegts-http') { window.open(withToken(`/live/${s.name}.ts`), '_blank'); return; }
        await api('POST', `/api/streams/${s.name}/outputs`, { type, ...p }).catch(() => {});
      },
    }, label === 'Record' ? 'Start recording' : `Start ${label}`)),
    el('button', { type: 'button', class: 'danger', onclick: () => api('DELETE', `/api/streams/${s.name}`) }, s.composite ? 'End composite' : 'Disconnect publisher'));
  const pick = s.composite ? undefined : el('label', { class: 'pick' }, el('input', { type: 'checkbox', checked: selected.has(s.name), onchange: (e) => (e.target.checked ? selected.add(s.name) : selected.delete(s.name)) }), ' call');
  return el('article', { class: 'card', 'aria-label': `stream ${s.name}` },
    el('h3', {}, s.name, ' ', el('span', { class: `state-${s.state}` }, s.state), ' ', el('a', { href: `/watch/${s.name}` }, 'watch'), ' ', el('a', { href: `/watch/${s.name}?mode=webrtc` }, 'in real time'), s.node ? el('span', { class: 'muted' }, ` on node ${s.node}`) : undefined, ' ', pick),
    s.composite ? el('p', { class: 'muted' }, `Composite (${s.composite.layout}) of ${s.composite.participants.join(', ')}${s.composite.speaker ? ` · speaking: ${s.composite.speaker}` : ''}`) : undefined,
    el('p', { class: 'muted' }, `since ${new Date(s.startedAt).toLocaleTimeString()}${s.ice ? ` · ICE ${s.ice.remote.type} ${s.ice.remote.protocol}` : ''}`),
    senderLine(s.sender),
    ignoredLine(s.ignoredMedia),
    graph(history.get(s.name) ?? []),
    tracks, viewersTable(s.viewers), outputs, actions);
}

/** The stream's WHEP viewers (real time): what each is sent and what its own reports say of its link. */
function viewersTable(viewers) {
  if (!viewers?.length) return undefined;
  const ms = (v) => (v === undefined ? '–' : `${v} ms`);
  return el('table', { 'aria-label': 'WHEP viewers' },
    el('caption', {}, `${viewers.length} real-time (WHEP) viewer${viewers.length === 1 ? '' : 's'}`),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Viewer'), el('th', { scope: 'col' }, 'State'), el('th', { scope: 'col' }, 'Sent'), el('th', { scope: 'col', class: 'hide-sm' }, 'Loss'), el('th', { scope: 'col', class: 'hide-sm' }, 'Round trip'), el('th', { scope: 'col', class: 'hide-sm' }, 'Queue'), el('th', { scope: 'col', class: 'hide-sm' }, 'Resent / asked'))),
    el('tbody', {}, ...viewers.map((v) => el('tr', {},
      el('td', { title: v.id }, `${v.id.slice(0, 8)} · ${v.tracks.map((t) => t.codec).join(' + ')}`),
      el('td', {}, el('span', { class: v.keepingUp ? `state-${v.state === 'connected' ? 'running' : 'starting'}` : 'state-failed' }, v.keepingUp ? v.state : `${v.state}, cannot keep up`)),
      el('td', {}, kbit(v.bitrateKbps)),
      el('td', { class: 'hide-sm' }, v.lossPercent === undefined ? '–' : `${v.lossPercent} %`),
      el('td', { class: 'hide-sm' }, ms(v.rttMs)),
      el('td', { class: 'hide-sm' }, ms(v.queueDelayMs)),
      el('td', { class: 'hide-sm' }, `${v.retransmitted} / ${v.nacked}`)))));
}

/** The publisher's keyframes: its own interval, and whether it answers requests (a fixed GOP sets the HLS segment length). */
function keyframeNote(t) {
  if (t.kind !== 'video' || (t.keyframeIntervalSeconds === undefined && t.answersKeyframeRequests === undefined)) return undefined;
  const every = t.keyframeIntervalSeconds !== undefined ? `keyframe every ${t.keyframeIntervalSeconds} s` : '';
  const asked = t.answersKeyframeRequests === false ? 'ignores keyframe requests' : t.answersKeyframeRequests ? 'keyframes on request' : '';
  return el('div', { class: 'muted', title: 'a publisher that ignores keyframe requests is asked at most once per its interval; HLS segments then last one interval' }, [every, asked].filter(Boolean).join(' · '));
}

/** Sections the publisher offered that the gateway left out (a stream without sound or picture says why). */
function ignoredLine(list) {
  if (!list?.length) return undefined;
  return el('p', { class: 'msg error', 'aria-label': 'offered media left out' },
    `Left out of this stream: ${list.map((m) => `${m.kind}${m.mid !== undefined ? ` (mid ${m.mid})` : ''}: ${m.reason}`).join('; ')}`);
}

const kbit = (v) => (v === undefined ? '–' : v >= 1000 ? `${(v / 1000).toFixed(1)} Mbit/s` : `${v} kbit/s`);
const LIMITED = { bandwidth: 'limited by bandwidth: the network (as the browser estimates it) carries no more', cpu: 'limited by CPU: the publisher’s computer cannot encode more', other: 'limited by the browser' };

/** What the publisher's browser says it sends (reported by the built-in publish page). */
function senderLine(r) {
  if (!r) return undefined;
  const why = r.qualityLimitationReason;
  return el('p', { class: 'sender', 'aria-label': 'what the publisher sends' },
    `Browser sends ${r.frameWidth ? `${r.frameWidth}×${r.frameHeight}` : '–'} at ${r.framesPerSecond ?? '–'} fps, ${kbit(r.bitrateKbps)} (encoder target ${kbit(r.targetKbps)}, available ${kbit(r.availableKbps)})`,
    why && why !== 'none' ? el('span', { class: 'state-failed' }, ` · ${LIMITED[why] ?? why}`) : undefined);
}

// Calls: composites made from the streams ticked above (POST /api/composites), listed with
// their participants, a layout switch (PATCH) and a delete button.
const selected = new Set();

$('new-call').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const streams = [...selected].filter((n) => lastStreams.some((s) => s.name === n));
  if (!streams.length) return message('Tick the streams that make the call first.');
  await api('POST', '/api/composites', { name: $('call-name').value, streams, layout: $('call-layout').value }).then(() => { selected.clear(); loadCalls(); }, () => {});
});

async function loadCalls() {
  const calls = await authFetch('/api/composites').then((r) => (r.ok ? r.json() : [])).catch(() => []);
  $('nocalls').hidden = calls.length > 0;
  $('calls').replaceChildren(...calls.map((c) => el('article', { class: 'card', 'aria-label': `composite ${c.name}` },
    el('h3', {}, c.name, ' ', el('span', { class: c.state === 'live' ? 'state-running' : 'state-waiting' }, c.state), ' ', el('a', { href: `/watch/${c.name}` }, 'watch')),
    el('p', {}, `${c.participants.length ? c.participants.join(', ') : 'no participant yet'} · streams ${c.streams.join(', ')} · ${c.width}×${c.height} at ${c.fps} fps`,
      c.compositor?.cpuPercent !== undefined ? ` · compositor ${c.compositor.cpuPercent} % CPU` : '', c.speaker ? ` · speaking: ${c.speaker}` : ''),
    el('div', { class: 'actions' },
      el('label', {}, 'Layout ', el('select', { 'aria-label': `layout of ${c.name}`, onchange: (e) => api('PATCH', `/api/composites/${c.name}`, { layout: e.target.value }).then(loadCalls, () => {}) },
        ...['grid', 'speaker'].map((l) => el('option', { value: l, selected: l === c.layout }, l)))),
      el('button', { type: 'button', class: 'danger', onclick: () => api('DELETE', `/api/composites/${c.name}`).then(loadCalls, () => {}) }, 'Delete composite')))));
}

function connect() {
  const ws = openSocket();
  ws.onopen = () => { message(''); ws.send(JSON.stringify({ type: 'subscribe', stats: true })); };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === 'streams') renderStreams(msg.streams);
    if (msg.type === 'event' && msg.event.type === 'recording.finished') loadRecordings();
  };
  ws.onclose = () => { message('Lost the connection to the gateway; retrying…'); setTimeout(connect, 2000); };
}

function fmtBytes(n) { return n > 1e9 ? `${(n / 1e9).toFixed(1)} GB` : n > 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.round(n / 1e3)} kB`; }
function fmtDuration(s) { return s == null ? '–' : `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, '0')}`; }

/** Duration, and what else a user should know: still recording, failed and why, parts. */
function recordingStatus(r) {
  const parts = r.parts?.length > 1 ? ` · ${r.parts.length} parts` : '';
  if (r.state === 'recording') return el('span', { class: 'state-running' }, `recording…${parts}`);
  const note = r.state === 'failed' || r.state === 'interrupted' ? el('span', { class: 'state-failed', title: r.error || '' }, ` ${r.state}${r.error ? `: ${r.error.split(':')[0]}` : ''}`) : undefined;
  return el('span', {}, `${fmtDuration(r.durationSeconds)}${parts}`, note);
}

async function loadRecordings() {
  const recs = await authFetch('/api/recordings').then((r) => r.json()).catch(() => []);
  $('norecs').hidden = recs.length > 0;
  $('recordings').hidden = recs.length === 0;
  $('recordings').tBodies[0].replaceChildren(...recs.reverse().map((r) => el('tr', {},
    el('td', {}, r.stream),
    el('td', {}, new Date(r.startedAt).toLocaleString()),
    el('td', {}, recordingStatus(r)),
    el('td', { class: 'hide-sm' }, fmtBytes(r.bytes)),
    el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'secondary', 'aria-label': `play ${r.file}`, onclick: () => { const p = $('player'); p.hidden = false; p.src = withToken(r.url); p.play().catch(() => {}); } }, 'Play'),
      el('a', { href: withToken(r.url), download: r.file }, 'Download'), ' ',
      el('button', { type: 'button', class: 'danger', 'aria-label': `delete ${r.file}`, onclick: async () => { if (confirm(`Delete ${r.file}?`)) { await api('DELETE', `/api/recordings/${r.stream}/${r.file}`); loadRecordings(); } } }, 'Delete')))));
}

async function loadHealth() {
  const h = await fetch('/healthz').then((r) => r.json()).catch(() => undefined);
  if (!h) return;
  $('h-cpu').textContent = `${h.cpuPercent ?? '–'} %`;
  $('h-mem').textContent = `${h.memoryMB} MB`;
  $('h-streams').textContent = String(h.streams);
  $('h-ffmpeg').textContent = String(h.ffmpegProcesses);
  $('h-up').textContent = `${Math.floor(h.uptimeSeconds / 60)} min`;
}

/** The cluster's nodes (alone: this gateway, and the section stays hidden). */
async function loadNodes() {
  const nodes = await authFetch('/api/cluster/nodes').then((r) => (r.ok ? r.json() : undefined)).catch(() => undefined);
  if (!nodes) return;
  $('nodes-section').hidden = nodes.length < 2; // alone: the Gateway figures above say it all
  remoteStreams = nodes.filter((n) => n.state === 'up' && !n.self).flatMap((n) => n.streams);
  $('nodes').tBodies[0].replaceChildren(...nodes.map((n) => el('tr', {},
    el('td', {}, el('a', { href: n.url }, n.id), n.self ? ' (this one)' : ''),
    el('td', {}, el('span', { class: n.state === 'up' ? 'state-running' : 'state-failed', title: `last seen ${new Date(n.seenAt).toLocaleTimeString()}` }, n.state)),
    el('td', {}, `${n.sessions}${n.maxSessions ? ` / ${n.maxSessions}` : ''}`),
    el('td', {}, `${n.cpuPercent} %${n.maxCpuPercent ? ` (ceiling ${n.maxCpuPercent} %)` : ''}`),
    el('td', { class: 'hide-sm' }, n.streams.map((s) => s.name).join(', ') || '–'))));
}

connect();
loadNodes();
setInterval(loadNodes, 2000);
loadRecordings();
loadHealth();
loadCalls();
setInterval(loadCalls, 2000);
setInterval(loadRecordings, 5000);
setInterval(loadHealth, 2000);
