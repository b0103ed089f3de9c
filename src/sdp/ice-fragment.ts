import * as sdpTransform from 'sdp-transform';
import { MAX_CANDIDATES, parseCandidate, SdpError } from './offer.js';

// ICE after the offer: trickled candidates and ICE restarts, as WHIP carries them in a
// PATCH (RFC 9725 §4.3, an application/trickle-ice-sdpfrag body, RFC 8840) and the
// WebSocket signalling in a new offer on the same session. Both become an IceUpdate: the
// publisher's ICE credentials (when it sent any), its candidates and whether they are all.
//
// werift renegotiates ICE from a complete re-offer, and a WHIP client sends only the ICE
// lines. So the re-offer werift gets is the exact offer it answered first, with new
// credentials and candidates and nothing else changed (withIce): nothing but ICE is
// renegotiated, whatever else a browser's re-offer says (RFC 9725 §4.3.2 asks the same of
// WHIP: "previously negotiated non-ICE-related SDP information still applies").

export interface IceUpdate {
  /** New credentials: an ICE restart when they differ from the current ones. */
  ufrag?: string;
  pwd?: string;
  /** Candidate attributes ("candidate:..."), with the mid of the section they came under, if any. */
  candidates: { candidate: string; mid?: string }[];
  /** a=end-of-candidates: the publisher has no more. */
  endOfCandidates: boolean;
  /** The sections the body names (a=mid), in order. */
  mids: string[];
}

/** RFC 8839 §5.4: ice-char is ALPHA / DIGIT / "+" / "/"; ufrag 4-256, pwd 22-256 of them. */
const UFRAG = /^[A-Za-z0-9+/]{4,256}$/;
const PWD = /^[A-Za-z0-9+/]{22,256}$/;

function checked(update: IceUpdate, what: string): IceUpdate {
  if ((update.ufrag === undefined) !== (update.pwd === undefined)) throw new SdpError(400, `${what} has ${update.ufrag === undefined ? 'a=ice-pwd without a=ice-ufrag' : 'a=ice-ufrag without a=ice-pwd'}`);
  if (update.ufrag !== undefined && !UFRAG.test(update.ufrag)) throw new SdpError(400, `${what}: a=ice-ufrag must be 4-256 letters, digits, "+" or "/"`);
  if (update.pwd !== undefined && !PWD.test(update.pwd)) throw new SdpError(400, `${what}: a=ice-pwd must be 22-256 letters, digits, "+" or "/"`);
  if (update.candidates.length > MAX_CANDIDATES) throw new SdpError(400, `${what} carries ${update.candidates.length} ICE candidates; at most ${MAX_CANDIDATES} are accepted`);
  for (const c of update.candidates) {
    if (!parseCandidate(c.candidate)) throw new SdpError(400, `${what}: not an ICE candidate: "a=${c.candidate.slice(0, 80)}"`);
  }
  return update;
}

/** Reads a trickle-ice-sdpfrag body (RFC 8840 §9.2). Throws SdpError (400) naming the problem. */
export function parseIceFragment(body: string): IceUpdate {
  const update: IceUpdate = { candidates: [], endOfCandidates: false, mids: [] };
  let mid: string | undefined;
  let recognised = 0;
  for (const raw of body.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    if (/^[vost]=/.test(line)) throw new SdpError(400, `the body is a whole SDP ("${line.slice(0, 20)}"): a PATCH takes an application/trickle-ice-sdpfrag fragment (RFC 8840): a=ice-ufrag, a=ice-pwd, m=, a=mid, a=candidate, a=end-of-candidates lines`);
    if (line.startsWith('m=')) mid = undefined;
    else if (line.startsWith('a=mid:')) update.mids.push((mid = line.slice(6)));
    else if (line.startsWith('a=ice-ufrag:')) update.ufrag = line.slice(12);
    else if (line.startsWith('a=ice-pwd:')) update.pwd = line.slice(10);
    else if (line.startsWith('a=candidate:')) update.candidates.push({ candidate: line.slice(2), ...(mid !== undefined ? { mid } : {}) });
    else if (line === 'a=end-of-candidates') update.endOfCandidates = true;
    else continue; // a=ice-options, a=ice-lite, and what a later RFC adds
    recognised++;
  }
  if (recognised === 0) throw new SdpError(400, 'the body holds no ICE ufrag, password, candidate or end-of-candidates: not an application/trickle-ice-sdpfrag fragment');
  return checked(update, 'the SDP fragment');
}

/** The ICE part of a whole re-offer (WebSocket signalling): the bundle tag section's credentials, every candidate. */
export function iceUpdateOfOffer(text: string): IceUpdate {
  let sdp: sdpTransform.SessionDescription;
  try {
    sdp = sdpTransform.parse(text);
  } catch (e) {
    throw new SdpError(400, `unparseable SDP: ${(e as Error).message}`);
  }
  if (!/^v=0\r?\n/.test(text.trimStart()) || !sdp.media?.length) throw new SdpError(400, 'the re-offer is not an SDP offer with m= sections');
  const creds = credentialsOf(sdp);
  return checked({
    ...(creds ? { ufrag: creds.ufrag, pwd: creds.pwd } : {}),
    candidates: sdp.media.flatMap((m) => (m.candidates ?? []).map((c) => ({ candidate: candidateText(c), ...(m.mid !== undefined ? { mid: String(m.mid) } : {}) }))),
    endOfCandidates: sdp.media.some((m) => m.endOfCandidates !== undefined),
    mids: sdp.media.map((m) => String(m.mid ?? '')),
  }, 'the re-offer');
}

/** The section whose transport a BUNDLE group uses: its first member with a port. */
function tagSection(sdp: sdpTransform.SessionDescription): sdpTransform.MediaDescription | undefined {
  const first = String((sdp.groups ?? []).find((g) => g.type === 'BUNDLE')?.mids ?? '').split(/\s+/).filter(Boolean);
  const byMid = first.map((mid) => sdp.media.find((m) => String(m.mid) === mid)).find((m) => m !== undefined && m.port !== 0);
  return byMid ?? sdp.media.find((m) => m.port !== 0);
}

/** ICE credentials of an SDP, as werift takes them (the bundle tag section's, else the session's). */
export function credentialsOf(sdp: sdpTransform.SessionDescription): { ufrag: string; pwd: string } | undefined {
  const tag = tagSection(sdp);
  const ufrag = tag?.iceUfrag ?? sdp.iceUfrag;
  const pwd = tag?.icePwd ?? sdp.icePwd;
  return ufrag && pwd ? { ufrag, pwd } : undefined;
}

function candidateText(c: NonNullable<sdpTransform.MediaDescription['candidates']>[number]): string {
  const section = sdpTransform.write({ media: [{ type: 'audio', port: 9, protocol: 'RTP/AVP', payloads: '0', rtp: [], fmtp: [], candidates: [c] }] } as unknown as sdpTransform.SessionDescription);
  return /^a=(candidate:.*)$/m.exec(section)?.[1] ?? '';
}

function candidateObject(text: string): NonNullable<sdpTransform.MediaDescription['candidates']>[number] | undefined {
  return sdpTransform.parse(`v=0\r\nm=audio 9 RTP/AVP 0\r\na=${text}\r\n`).media[0]?.candidates?.[0];
}

/**
 * `sdpText` with new ICE: the new credentials in every section, no session-level ones, and
 * the update's candidates (and end-of-candidates) on the bundle tag section; nothing else
 * changes. The re-offer werift gets for an ICE restart is the offer it answered before,
 * so made (a WHIP client applies a PATCH's answer to its first answer the same way).
 */
export function withIce(sdpText: string, update: IceUpdate & { ufrag: string; pwd: string }): string {
  const sdp = sdpTransform.parse(sdpText);
  delete sdp.iceUfrag;
  delete sdp.icePwd;
  const tag = tagSection(sdp);
  for (const m of sdp.media) {
    m.iceUfrag = update.ufrag;
    m.icePwd = update.pwd;
    delete m.candidates;
    delete m.endOfCandidates;
  }
  if (tag) {
    const candidates = update.candidates.map((c) => candidateObject(c.candidate)).filter((c) => c !== undefined);
    if (candidates.length) tag.candidates = candidates;
    if (update.endOfCandidates) tag.endOfCandidates = 'end-of-candidates';
  }
  return sdpTransform.write(sdp);
}

/**
 * The body of the 200 answering a WHIP ICE restart (RFC 9725 §4.3.2): the gateway's new
 * credentials and candidates under the bundle tag section of its answer.
 */
export function answerFragment(answer: string): string {
  const sdp = sdpTransform.parse(answer);
  const tag = tagSection(sdp);
  const creds = credentialsOf(sdp);
  if (!tag || !creds) throw new Error('the answer has no section with a port and ICE credentials');
  const candidates = [...new Set(sdp.media.flatMap((m) => (m.candidates ?? []).map(candidateText)))]; // werift repeats them per section
  return [
    `m=${tag.type} ${tag.port} ${tag.protocol} ${tag.payloads}`,
    `a=mid:${tag.mid}`,
    `a=ice-ufrag:${creds.ufrag}`,
    `a=ice-pwd:${creds.pwd}`,
    ...candidates.map((c) => `a=${c}`),
    'a=end-of-candidates',
    '',
  ].join('\r\n');
}
