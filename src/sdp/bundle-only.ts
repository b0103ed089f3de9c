import type { MediaDescription, SessionDescription } from 'sdp-transform';

// RFC 8843 bundle-only sections. An offerer that bundles for sure (GStreamer's webrtcbin
// with bundle-policy max-bundle, what its WHIP elements use; JSEP's max-bundle, RFC 9429
// §5.2.1) gives every section but the first of a BUNDLE group port 0 and
// `a=bundle-only`: "take me into the bundle, I have no transport of my own". An answerer
// that knows BUNDLE accepts such a section like any other member (RFC 8843 §7.3.3).
// werift reads port 0 as "rejected" and answers it `a=inactive`, port 0, out of the
// group: the stream went live without sound and nothing said why. So the offer is
// rewritten before anything reads ports: a bundle-only member of a group whose tag
// section has a port gets the discard port 9 (what browsers write for bundled sections)
// and the tag section's transport attributes where it left them out (RFC 8843 §7.2
// allows that; webrtcbin writes them anyway).

export interface BundleOnlyResult {
  /** Sections taken into their bundle, by m-section index. */
  accepted: number[];
  /** Bundle-only sections that could not be (not in a BUNDLE group, or no member has a port), with why. */
  refused: { index: number; reason: string }[];
}

const isBundleOnly = (m: MediaDescription): boolean => m.port === 0 && m.bundleOnly !== undefined;

/** Rewrites `sdp` in place (see above) and says which bundle-only sections it took and which it could not. */
export function acceptBundleOnly(sdp: SessionDescription): BundleOnlyResult {
  const result: BundleOnlyResult = { accepted: [], refused: [] };
  const grouped = new Set<number>();
  for (const group of (sdp.groups ?? []).filter((g) => g.type === 'BUNDLE')) {
    const mids = String(group.mids).split(/\s+/).filter(Boolean);
    const members = mids.flatMap((mid) => {
      const index = sdp.media.findIndex((m) => m.mid !== undefined && String(m.mid) === mid);
      return index < 0 ? [] : [index];
    });
    members.forEach((i) => grouped.add(i));
    // The offerer-tagged section (RFC 8843 §7.2.1): the first member with a port of its own.
    const tag = members.map((i) => sdp.media[i]).find((m) => m.port !== 0);
    for (const index of members) {
      const m = sdp.media[index];
      if (!isBundleOnly(m)) continue;
      if (!tag) {
        result.refused.push({ index, reason: 'a=bundle-only, but no section of its BUNDLE group has a port (nothing to bundle with)' });
        continue;
      }
      m.port = 9;
      delete m.bundleOnly;
      m.iceUfrag ??= tag.iceUfrag;
      m.icePwd ??= tag.icePwd;
      m.fingerprint ??= tag.fingerprint;
      m.setup ??= tag.setup;
      m.rtcpMux ??= 'rtcp-mux';
      m.connection ??= tag.connection ?? { version: 4, ip: '0.0.0.0' };
      result.accepted.push(index);
    }
  }
  sdp.media.forEach((m, index) => {
    if (isBundleOnly(m) && !grouped.has(index)) result.refused.push({ index, reason: 'a=bundle-only, but not in an a=group:BUNDLE of the offer' });
  });
  return result;
}
