// Polling for a condition in tests that drive real processes (failovers, restarts).

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls check (errors count as "not yet") every 100 ms until it returns a value. */
export async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
