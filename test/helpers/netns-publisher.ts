// A werift publisher run inside a network namespace (`ip netns exec <ns> node --import tsx
// test/helpers/netns-publisher.ts`), driven by the test through stdio: options come in
// PUBLISHER_OPTIONS (JSON), progress goes out as JSON lines, SIGTERM stops it.
import { startWeriftPublisher, type PublisherOptions } from './werift-publisher.js';

const opts = JSON.parse(process.env.PUBLISHER_OPTIONS ?? '{}') as PublisherOptions;
const say = (m: object) => process.stdout.write(`${JSON.stringify(m)}\n`);

const pub = await startWeriftPublisher(opts);
say({ type: 'posted', status: pub.status, location: pub.location, error: pub.errorText, answerCandidates: pub.answer.split('\r\n').filter((l) => l.startsWith('a=candidate')), offerCandidates: pub.pc.localDescription?.sdp.split('\r\n').filter((l) => l.startsWith('a=candidate')) });
if (pub.status !== 201) process.exit(1);
pub.connected().then(
  () => {
    const pair = pub.pc.iceTransports[0]?.getSelectedCandidatePair();
    say({ type: 'connected', local: pair?.local.candidate, remote: pair?.remote.candidate });
  },
  (e: Error) => say({ type: 'failed', error: e.message }),
);
const stop = async () => {
  await pub.stop({ delete: false });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
setTimeout(() => void stop(), 120_000).unref(); // never outlive the test
