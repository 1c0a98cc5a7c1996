// The OpenTelemetry SDK, set up from the standard OTEL_* variables: spans of the HTTP server,
// Express routes, PostgreSQL and Redis, exported over OTLP. Loaded only when tracing is on
// (src/tracing.ts decides), and before express, pg and ioredis are, so instrumentation can patch them.
import { diag, DiagConsoleLogger, DiagLogLevel, isSpanContextValid, trace } from '@opentelemetry/api';
import { ExpressInstrumentation, ExpressLayerType } from '@opentelemetry/instrumentation-express';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { useSpanSource } from './trace-context';

/** Paths answered before logging (health, metrics): polled constantly, not traced either. */
const UNTRACED = /^\/(health|metrics)(\/|\?|$)/;

/** Whether the service name comes from the environment (the SDK's env detector reads both). */
function namedByEnvironment(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.OTEL_SERVICE_NAME?.trim()) || /(^|,)\s*service\.name\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '');
}

/**
 * Starts the SDK; returns what flushes and stops it.
 * @public required lazily by src/tracing.ts, which knip does not follow
 */
export function startOpenTelemetry(env: NodeJS.ProcessEnv): () => Promise<void> {
  // The SDK is silent unless OTEL_LOG_LEVEL is set: a collector that cannot be reached would go
  // unnoticed. Its errors go to stderr (the app's own log is stdout); its warnings would repeat
  // per request for harmless instrumentation quirks.
  if (!env.OTEL_LOG_LEVEL) diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.ERROR);
  const sdk = new NodeSDK({
    serviceName: namedByEnvironment(env) ? undefined : 'rampart',
    // Traces only, unless the operator asks for more: metrics are scraped from /metrics and logs
    // go to stdout (the SDK would otherwise default both to OTLP as well).
    ...(env.OTEL_METRICS_EXPORTER ? {} : { metricReaders: [] }),
    ...(env.OTEL_LOGS_EXPORTER ? {} : { logRecordProcessors: [] }),
    instrumentations: [
      new HttpInstrumentation({ ignoreIncomingRequestHook: (req) => UNTRACED.test(req.url ?? '') }),
      // Route handlers only: a span for every middleware layer a request passes would add several
      // spans to each request and tell little. The route template still names the server span
      // (GET /api/v1/items/:id).
      new ExpressInstrumentation({ ignoreLayersType: [ExpressLayerType.MIDDLEWARE, ExpressLayerType.ROUTER] }),
      // Queries and commands outside a request (pings, migrations) make no traces of their own.
      new PgInstrumentation({ requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  sdk.start();
  useSpanSource(() => {
    const ids = trace.getActiveSpan()?.spanContext();
    return ids && isSpanContextValid(ids) ? { traceId: ids.traceId, spanId: ids.spanId } : undefined;
  });
  return () => sdk.shutdown();
}
