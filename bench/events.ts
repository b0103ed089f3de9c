// Listens to the gateway's event feed (GET /api/events, server-sent events) during a run,
// so streams or outputs that stop or fail under load are reported with their reason.

export interface SeenEvent {
  type: string;
  at: string;
  stream: string;
  reason?: string;
  output?: { id: string; type: string; error?: string };
}

export interface EventWatch {
  events: SeenEvent[];
  close: () => void;
}

export async function watchEvents(baseUrl: string): Promise<EventWatch> {
  const events: SeenEvent[] = [];
  const abort = new AbortController();
  const res = await fetch(`${baseUrl}/api/events`, { signal: abort.signal });
  if (!res.ok || !res.body) throw new Error(`GET /api/events: ${res.status}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  void (async () => {
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          if (!data) continue;
          try {
            if (events.length < 10_000) events.push(JSON.parse(data) as SeenEvent);
          } catch {
            // not JSON: ignore
          }
        }
      }
    } catch {
      // aborted or the gateway went away
    }
  })();
  return { events, close: () => abort.abort() };
}
