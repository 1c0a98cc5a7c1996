// Dependency probes for readiness and the detailed report. Each probe has a short timeout, and
// results are reused for a short interval so that frequent polling never loads Redis or PostgreSQL.
import type { Database } from './db';
import type { KeyValueStore } from './store/types';
import { withTimeout } from './timeout';

export interface ProbeResult {
  ok: boolean;
  latencyMs?: number;
  error?: string;
  time: string;
}

export interface Probes {
  redis(): Promise<ProbeResult>;
  database(): Promise<ProbeResult>;
}

const PROBE_TIMEOUT_MS = 500;
const PROBE_TTL_MS = 1000;

function cached(run: () => Promise<ProbeResult>, ttlMs: number): () => Promise<ProbeResult> {
  let last: { at: number; result: Promise<ProbeResult> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at >= ttlMs) last = { at: now, result: run() };
    return last.result;
  };
}

async function probe(ping: () => Promise<number>): Promise<ProbeResult> {
  const time = new Date().toISOString();
  try {
    const latencyMs = await withTimeout(ping(), PROBE_TIMEOUT_MS, 'probe');
    return { ok: true, latencyMs: Math.round(latencyMs * 100) / 100, time };
  } catch (err) {
    // The message of a timeout or a refused connection; never a URL or credential.
    return { ok: false, error: err instanceof Error && err.name === 'TimeoutError' ? 'timeout' : 'unreachable', time };
  }
}

export function createProbes(deps: { store: KeyValueStore; db: Database }, ttlMs = PROBE_TTL_MS): Probes {
  return {
    redis: cached(() => probe(() => deps.store.ping()), ttlMs),
    database: cached(() => probe(() => deps.db.ping()), ttlMs),
  };
}
