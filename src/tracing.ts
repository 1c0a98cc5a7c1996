// Tracing switch, imported first by src/server.ts so that instrumentation is in place before
// express, pg and ioredis load. Tracing is on when the standard OpenTelemetry variables ask for
// spans (an OTLP endpoint, or a traces exporter other than `none`) and OTEL_SDK_DISABLED is not
// true. Off, the SDK is never loaded: no module, no hook, no cost on the request path.

/** Longest wait for the last spans to leave at shutdown (the exporter's own timeout is 10 s). */
const FLUSH_TIMEOUT_MS = 2000;

const listOf = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');

/** Whether the environment asks for spans to be exported. */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = listOf(env.OTEL_TRACES_EXPORTER);
  if (exporters.length > 0) return exporters.some((e) => e !== 'none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

let stop: (() => Promise<void>) | undefined;

if (tracingRequested(process.env)) {
  // Loaded only here: with tracing off, no OpenTelemetry module is ever required.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a conditional, synchronous load that must precede express, pg and ioredis
  const { startOpenTelemetry } = require('./lib/opentelemetry') as typeof import('./lib/opentelemetry');
  stop = startOpenTelemetry(process.env);
}

/** Sends the spans still buffered and stops tracing; at most FLUSH_TIMEOUT_MS. Nothing when off. */
export async function stopTracing(): Promise<void> {
  if (!stop) return;
  const flushing = stop();
  stop = undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_TIMEOUT_MS).unref()));
  await Promise.race([flushing.catch(() => undefined), timeout]);
  clearTimeout(timer);
}
