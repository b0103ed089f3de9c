// The access token of the built-in pages. When the gateway needs credentials (its /healthz
// says so), each page shows a token field in its header; the token is kept in this
// browser (localStorage) and sent the way each route takes it: a Bearer header for WHIP
// and the API, a WebSocket subprotocol for /ws, and ?token= for player URLs (HLS, /live).
const KEY = 'webrtc-rtp-gateway.token';

export const token = () => localStorage.getItem(KEY) || '';

export function authHeaders(headers = {}) {
  const t = token();
  return t ? { ...headers, Authorization: `Bearer ${t}` } : headers;
}

/** fetch() with the token; a 401 or 403 opens the token field with the gateway's reason. */
export async function authFetch(url, init = {}) {
  const res = await fetch(url, { ...init, headers: authHeaders(init.headers) });
  if (res.status === 401 || res.status === 403) {
    const reason = await res.clone().json().then((b) => b.message, () => res.clone().text()).catch(() => '');
    showTokenForm(reason || `${res.status}`);
  }
  return res;
}

const base64url = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/** A WebSocket to the gateway's /ws, carrying the token as a subprotocol. */
export function openSocket(base) {
  // base: another node of a cluster (the one a full node redirected the publisher to)
  const url = base ? `${base.replace(/^http/, 'ws')}/ws` : `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const t = token();
  return new WebSocket(url, t ? ['webrtc-rtp-gateway', `token.${base64url(t)}`] : []);
}

/** A player URL with ?token= (players cannot send headers). */
export function withToken(url) {
  const t = token();
  return t ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(t)}` : url;
}

let form;
function showTokenForm(reason) {
  if (!form) {
    form = document.createElement('form');
    form.className = 'row token';
    form.innerHTML = '<label>Access token <input id="token" type="password" autocomplete="current-password" size="24"></label><button type="submit">Save</button><button type="button" id="token-forget">Forget</button><span id="token-reason" role="status"></span>';
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = form.querySelector('#token').value.trim();
      if (value) localStorage.setItem(KEY, value);
      location.reload();
    });
    form.querySelector('#token-forget').addEventListener('click', () => {
      localStorage.removeItem(KEY);
      location.reload();
    });
    document.querySelector('header').append(form);
  }
  form.querySelector('#token').value = token();
  form.querySelector('#token-reason').textContent = reason || '';
  form.hidden = false;
}

// The field is there from the start whenever the gateway needs credentials.
fetch('/healthz')
  .then((r) => r.json())
  .then((h) => h.auth && showTokenForm(token() ? '' : 'this gateway needs an access token'))
  .catch(() => {});
