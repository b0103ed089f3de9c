import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Renders session SDP files from sdp-templates/ (data, not code). The templates directory
// sits at the package root, two levels above this file in both src/ and dist/.

export const TEMPLATE_DIR = fileURLToPath(new URL('../../sdp-templates/', import.meta.url));

export interface SdpMedia {
  /** Template name: h264, opus, pcmu, pcma. */
  codec: string;
  port: number;
  payloadType: number;
  clockRate: number;
  channels?: number;
  /** fmtp parameters, written in this order; empty means no a=fmtp line. */
  fmtp?: Record<string, string | number>;
}

export interface SessionSdp {
  name: string;
  /** Where the RTP is sent/received: 127.0.0.1 for ffmpeg inputs. */
  address: string;
  sessionId?: number;
  media: SdpMedia[];
}

const cache = new Map<string, string>();

function template(name: string, dir: string): string {
  const key = `${dir}/${name}`;
  let text = cache.get(key);
  if (text === undefined) {
    try {
      text = readFileSync(`${dir}/${name}.sdp`, 'utf8');
    } catch {
      throw new Error(`no SDP template for "${name}" in ${dir}`);
    }
    cache.set(key, text);
  }
  return text;
}

/** Fills `{{key}}` placeholders; drops lines whose placeholder rendered empty. */
export function fillTemplate(text: string, values: Record<string, string | number | undefined>): string {
  const lines: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    let empty = false;
    const filled = line.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
      if (!(key in values)) throw new Error(`SDP template placeholder {{${key}}} has no value`);
      const v = values[key];
      if (v === undefined || v === '') empty = true;
      return v === undefined ? '' : String(v);
    });
    if (!empty) lines.push(filled);
  }
  return lines.map((l) => `${l}\r\n`).join('');
}

export function formatFmtp(fmtp: Record<string, string | number> | undefined): string {
  if (!fmtp) return '';
  return Object.entries(fmtp)
    .map(([k, v]) => `${k}=${v}`)
    .join(';');
}

/** The whole session SDP text, CRLF line endings (RFC 8866). */
export function renderSessionSdp(session: SessionSdp, dir = TEMPLATE_DIR): string {
  let out = fillTemplate(template('session', dir), {
    sessionId: session.sessionId ?? Date.now(),
    address: session.address,
    name: session.name,
  });
  for (const m of session.media) {
    out += fillTemplate(template(m.codec.toLowerCase(), dir), {
      port: m.port,
      payloadType: m.payloadType,
      clockRate: m.clockRate,
      channels: m.channels,
      fmtp: formatFmtp(m.fmtp),
    });
  }
  return out;
}
