import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';

// A real WHIP offer (H.264 + Opus, sendonly, host candidate on 127.0.0.1) from a werift
// peer that is then closed: for tests that post offers which never connect.

/** `videoSections`: how many video sections (2: one the gateway leaves out); `audio`: whether to offer Opus. */
export async function makeOffer({ videoSections = 1, audio = true }: { videoSections?: number; audio?: boolean } = {}): Promise<string> {
  const pc = new RTCPeerConnection({
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    iceServers: [],
    codecs: {
      video: [new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, payloadType: 102, parameters: 'packetization-mode=1;profile-level-id=42e01f' })],
      audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })],
    },
  });
  for (let i = 0; i < videoSections; i++) pc.addTransceiver('video', { direction: 'sendonly' });
  if (audio) pc.addTransceiver('audio', { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && resolve());
  });
  const sdp = pc.localDescription!.sdp;
  await pc.close();
  return sdp;
}
