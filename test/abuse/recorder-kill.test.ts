import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProcesses } from '../helpers/e2e-api.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Killing what writes a recording. A recorder's ffmpeg SIGKILLed mid-recording keeps what
// it had written: measured against a twin recorder of the same stream, started together
// and left alone, the killed one's first part lacks at most 1.5 s of what the twin holds
// up to the kill (it lacked 8.5 s with one fragment per keyframe and a long GOP), and the
// restarted recorder writes the next part. And a whole gateway SIGKILLed and started again
// 4 s later: the MKV it was writing is measured (it had no duration at all) and the ffmpeg
// it left behind is stopped.

interface Part {
  file: string;
  durationSeconds: number | null;
}
interface Recording {
  file: string;
  state: string;
  durationSeconds: number | null;
  parts: Part[];
}

const recordingsOf = async (base: string): Promise<Recording[]> => (await (await fetch(`${base}/api/recordings`)).json()) as Recording[];

async function startRecord(base: string, stream: string, format: string): Promise<{ id: string; file: string }> {
  const res = await fetch(`${base}/api/streams/${stream}/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'record', format }) });
  expect(res.status, await res.clone().text()).toBe(201);
  const json = (await res.json()) as { id: string; urls: { file: string } };
  return { id: json.id, file: path.basename(json.urls.file) };
}

describe('abuse: killing what writes a recording', () => {
  let t: TestGateway;
  let pub: Publisher;

  beforeAll(async () => {
    // No HLS: the gateway then asks for no keyframes, and the publisher's own GOP (6 s)
    // is all there is, as with an encoder that keeps its own key interval.
    t = await startTestGateway({ hls: { auto: false } });
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/rec`, width: 320, height: 240, fps: 30, gop: 180 });
    expect(pub.status, pub.errorText).toBe(201);
    await pub.connected();
    await waitFor('rec live', () => (t.gw.registry.get('rec')?.state === 'live' ? true : undefined));
  }, 60_000);

  afterAll(async () => {
    await pub?.stop().catch(() => undefined);
    await t?.close();
  });

  it('a SIGKILLed recorder loses at most 1.5 s, and goes on in its next part (mp4 and mkv)', async () => {
    const stream = t.gw.registry.get('rec')!;
    const pairs: { format: string; killed: { id: string; file: string }; twin: { id: string; file: string } }[] = [];
    for (const format of ['mp4', 'mkv']) pairs.push({ format, killed: await startRecord(t.url, 'rec', format), twin: await startRecord(t.url, 'rec', format) });
    await waitFor('recorders running', () => (pairs.every((p) => [p.killed, p.twin].every((r) => stream.outputs.get(r.id)?.state === 'running')) ? true : undefined));
    await new Promise((r) => setTimeout(r, 9000));
    const killedAt = performance.now();
    for (const p of pairs) process.kill(stream.outputs.get(p.killed.id)!.pid!, 'SIGKILL');
    // The twins stop cleanly: the media they got after the kill is what separates them from the kill moment.
    await Promise.all(pairs.map((p) => fetch(`${t.url}/api/streams/rec/outputs/${p.twin.id}`, { method: 'DELETE' })));
    const twinsStoppedMs = performance.now() - killedAt;
    await waitFor('killed recorders writing their next part', () => (pairs.every((p) => stream.outputs.get(p.killed.id)?.info().restarts === 1 && stream.outputs.get(p.killed.id)?.state === 'running') ? true : undefined), 15_000);
    await new Promise((r) => setTimeout(r, 3000));
    for (const p of pairs) await fetch(`${t.url}/api/streams/rec/outputs/${p.killed.id}`, { method: 'DELETE' });

    const files = pairs.flatMap((p) => [p.killed.file, p.twin.file]);
    const all = await waitFor('recordings finished and measured', async () => {
      const list = await recordingsOf(t.url);
      return files.every((f) => list.find((r) => r.file === f)?.state === 'finished') ? list : undefined;
    });
    for (const p of pairs) {
      const killed = all.find((r) => r.file === p.killed.file)!;
      const twin = all.find((r) => r.file === p.twin.file)!;
      const twinAtKill = twin.durationSeconds! - twinsStoppedMs / 1000;
      const lost = twinAtKill - killed.parts[0].durationSeconds!;
      console.log(`${p.format}: the twin held ${twinAtKill.toFixed(2)} s at the kill, the killed recorder's part 1 ${killed.parts[0].durationSeconds} s: ${lost.toFixed(2)} s lost; part 2 ${killed.parts[1]?.durationSeconds} s`);
      expect(killed.parts).toHaveLength(2);
      expect(lost).toBeLessThanOrEqual(1.5);
      expect(killed.parts[1].durationSeconds).toBeGreaterThan(1);
    }
  }, 90_000);

  it('a gateway SIGKILLed while recording MKV and started again 4 s later: the recording is measured, its orphaned ffmpeg stopped', async () => {
    const g = await startGatewayProcess({ HLS_AUTO: 'false' });
    let publisher: Publisher | undefined;
    try {
      publisher = await startWeriftPublisher({ whipUrl: `${g.url}/whip/crash`, width: 320, height: 240, gop: 60 });
      expect(publisher.status, publisher.errorText).toBe(201);
      await publisher.connected();
      const rec = await startRecord(g.url, 'crash', 'mkv');
      await waitFor('recording running', async () => ((await (await fetch(`${g.url}/api/streams/crash/outputs/${rec.id}`)).json()) as { state: string }).state === 'running' || undefined);
      await new Promise((r) => setTimeout(r, 5000));
      g.proc.kill('SIGKILL');
      await g.exited;
      await new Promise((r) => setTimeout(r, 4000));
      expect((await findProcesses('ffmpeg', g.dataDir)).length).toBeGreaterThan(0); // still writing, orphaned
      const again = await startGatewayProcess({ HLS_AUTO: 'false' }, { dataDir: g.dataDir });
      try {
        expect(await findProcesses('ffmpeg', g.dataDir)).toEqual([]);
        const [recording] = await recordingsOf(again.url);
        console.log('after the restart:', JSON.stringify(recording));
        expect(recording.state).toBe('interrupted');
        expect(recording.durationSeconds).toBeGreaterThan(3);
        expect(await readdir(path.join(g.dataDir, 'recordings', 'crash'))).toContain(rec.file);
      } finally {
        await again.close({ keepData: true });
      }
    } finally {
      await publisher?.stop({ delete: false }).catch(() => undefined);
      await g.close();
    }
  }, 90_000);
});
