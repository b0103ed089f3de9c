// Which node a new publisher goes to: one with room (under its cluster.maxSessions and
// its CPU ceiling), the least loaded first. Pure, so it is tested alone.

/** What a node says of its load in its heartbeat. */
export interface NodeLoad {
  sessions: number;
  /** 0: no cap. */
  maxSessions: number;
  /** The machine's CPU, % of all its cores, over the last heartbeat interval. */
  cpuPercent: number;
  /** 0: no ceiling. */
  maxCpuPercent: number;
}

export function hasRoom(n: NodeLoad): boolean {
  return (n.maxSessions === 0 || n.sessions < n.maxSessions) && (n.maxCpuPercent === 0 || n.cpuPercent < n.maxCpuPercent);
}

/** How full a node is, 0..1: the larger of its share of sessions and of its CPU ceiling (CPU alone when uncapped). */
export function fullness(n: NodeLoad): number {
  const sessions = n.maxSessions > 0 ? n.sessions / n.maxSessions : 0;
  const cpu = n.cpuPercent / (n.maxCpuPercent > 0 ? n.maxCpuPercent : 100);
  return Math.max(sessions, cpu);
}

/** The least-loaded node with room (ties: fewer sessions), or undefined when none has any. */
export function chooseNode<T extends NodeLoad>(nodes: T[]): T | undefined {
  return nodes.filter(hasRoom).sort((a, b) => fullness(a) - fullness(b) || a.sessions - b.sessions)[0];
}
