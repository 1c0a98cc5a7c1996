// Trace ids for log lines: the W3C traceparent parser (a malformed header is ignored, never an
// error), id generation, the request context's lazy ids, the logger's fields, and the switch that
// decides from the standard OTEL_* variables whether the OpenTelemetry SDK loads at all.
import { describe, expect, it } from 'vitest';
import { requestContext, traceIdsOf } from '../../src/lib/request-context';
import { activeSpanIds, newTraceIds, parseTraceparent } from '../../src/lib/trace-context';
import { tracingRequested } from '../../src/tracing';
import { captureLogger } from '../helpers/log-capture';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parseTraceparent', () => {
  it('reads the trace id and parent id of a well-formed header, whatever its flags', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`)).toEqual({ traceId: TRACE, spanId: SPAN });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).toEqual({ traceId: TRACE, spanId: SPAN });
  });

  it('accepts a later version with more fields after the flags, but not version 00', () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-extra`)).toEqual({ traceId: TRACE, spanId: SPAN });
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01`)).toEqual({ traceId: TRACE, spanId: SPAN });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01-extra`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01x`)).toBeUndefined();
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01x`)).toBeUndefined();
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['garbage', 'not a traceparent'],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['a short parent id', `00-${TRACE}-${SPAN.slice(1)}-01`],
    ['a one-digit flags field', `00-${TRACE}-${SPAN}-1`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['an all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['leading text', ` 00-${TRACE}-${SPAN}-01`],
    ['two headers joined', `00-${TRACE}-${SPAN}-01, 00-${TRACE}-${SPAN}-01`],
    ['an array', [`00-${TRACE}-${SPAN}-01`]],
  ])('ignores a header that is %s', (_name, header) => {
    expect(parseTraceparent(header)).toBeUndefined();
  });
});

describe('newTraceIds', () => {
  it('makes a new trace of lowercase hex ids, different each time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      // 300 > the pool's 128 ids: refilling is exercised too.
      const ids = newTraceIds();
      expect(ids.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(ids.spanId).toMatch(/^[0-9a-f]{16}$/);
      seen.add(ids.traceId).add(ids.spanId);
    }
    expect(seen.size).toBe(600);
  });

  it('keeps an incoming trace id and gives the request its own span id', () => {
    const ids = newTraceIds({ traceId: TRACE, spanId: SPAN });
    expect(ids.traceId).toBe(TRACE);
    expect(ids.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(ids.spanId).not.toBe(SPAN);
  });

  it('has no active span ids while tracing is off', () => {
    expect(activeSpanIds()).toBeUndefined();
  });
});

describe('traceIdsOf (the request context)', () => {
  it('uses the traceparent of the request, once: the same ids on every line', () => {
    const ctx = { requestId: 'r', traceparent: `00-${TRACE}-${SPAN}-01` };
    const first = traceIdsOf(ctx);
    expect(first.traceId).toBe(TRACE);
    expect(traceIdsOf(ctx)).toBe(first);
  });

  it('starts a new trace when the header is malformed or absent', () => {
    expect(traceIdsOf({ requestId: 'r', traceparent: 'garbage' }).traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(traceIdsOf({ requestId: 'r' }).traceId).not.toBe(TRACE);
  });

  it('keeps ids given up front (the active span, tracing on)', () => {
    const trace = { traceId: TRACE, spanId: SPAN };
    expect(traceIdsOf({ requestId: 'r', traceparent: 'garbage', trace })).toBe(trace);
  });
});

describe('the logger', () => {
  it('puts the request trace ids on every line of the request, and none outside one', () => {
    const { logger, lines } = captureLogger();
    requestContext.run({ requestId: 'req-1', traceparent: `00-${TRACE}-${SPAN}-01` }, () => {
      logger.info('one');
      logger.warn('two', { traceId: 'given' });
    });
    logger.info('outside');
    const [one, two, outside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(one).toMatchObject({ requestId: 'req-1', traceId: TRACE });
    expect(one!.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(two).toMatchObject({ traceId: 'given' });
    expect(outside!.traceId).toBeUndefined();
    expect(outside!.spanId).toBeUndefined();
  });
});

describe('tracingRequested', () => {
  const endpoint = 'http://collector:4318';
  it.each([
    [{}, false],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${endpoint}/v1/traces` }, true],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }, false],
    [{ OTEL_TRACES_EXPORTER: 'otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: 'console' }, true],
    [{ OTEL_TRACES_EXPORTER: ' none ', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, false],
    [{ OTEL_TRACES_EXPORTER: 'none,otlp' }, true],
    [{ OTEL_TRACES_EXPORTER: ',' }, false],
    [{ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, false],
    [{ OTEL_SDK_DISABLED: ' TRUE ', OTEL_TRACES_EXPORTER: 'otlp' }, false],
    [{ OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
    [{ OTEL_SDK_DISABLED: '1', OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }, true],
  ])('%j → %s', (env, expected) => {
    expect(tracingRequested(env)).toBe(expected);
  });
});
