import { KEEP_LOOPBACK_CANDIDATES_JS } from './chromium.js';
// A script added before a page's own (page.addInitScript) for pages that watch over WHEP
// themselves (the gateway's /watch/<name>?mode=webrtc): their offer leaves the page with
// only IPv4 UDP host candidates moved to 127.0.0.1, as every test's offers do (see
// chromium.ts: media stays on loopback), and the page keeps when its WHEP POST was
// answered (window.__whep.answeredAt, Date.now()), for the time to first picture.
// `breakIce`: every candidate, both ways, names a port nothing listens on (9, discard):
// WebRTC never connects, as behind a firewall that blocks UDP.

export function whepPageShim({ breakIce = false }: { breakIce?: boolean } = {}): string {
  return String.raw`(() => {
  const BREAK = ${JSON.stringify(breakIce)};
  const broken = (sdp) => sdp.split('\r\n').map((l) => {
    if (!l.startsWith('a=candidate:')) return l;
    const f = l.split(' ');
    f[5] = '9';
    return f.join(' ');
  }).join('\r\n');
  ${KEEP_LOOPBACK_CANDIDATES_JS}
  window.__whep = {};
  const original = window.fetch;
  window.fetch = async (url, init) => {
    const whep = init && init.method === 'POST' && /\/whep\/[^/]+$/.test(String(url));
    if (!whep) return original(url, init);
    window.__whep.postedAt = Date.now();
    const res = await original(url, { ...init, body: BREAK ? broken(keepLoopbackCandidates(init.body)) : keepLoopbackCandidates(init.body) });
    window.__whep.answeredAt = Date.now();
    window.__whep.status = res.status;
    if (!BREAK || res.status !== 201) return res;
    return new Response(broken(await res.text()), { status: res.status, headers: res.headers });
  };
})();`;
}
