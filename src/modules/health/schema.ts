// What the health endpoints answer.
import { s } from '../../lib/schema';

const status = s.enum(['pass', 'warn', 'fail']);

export const healthStatus = s.named('HealthStatus', s.object({ status: s.enum(['pass', 'fail']) }, { example: { status: 'pass' } }));

export const readiness = s.named(
  'Readiness',
  s.object({
    status: s.enum(['pass', 'fail']),
    reason: s.optional(s.enum(['draining'])),
    checks: s.optional(s.object({ redis: s.boolean(), database: s.boolean() })),
  }),
);

const check = s.named(
  'HealthCheck',
  s.object({
    componentType: s.enum(['datastore', 'system']),
    observedValue: s.optional(s.number({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    observedUnit: s.enum(['ms', 'bytes', 's']),
    status,
    time: s.string({ format: 'date-time', maxLength: 40 }),
    output: s.optional(s.string({ maxLength: 200, description: 'Why the component is not passing (never a URL or credential).' })),
  }),
);

/** The IETF health-check draft's shape (application/health+json). */
export const healthReport = s.named(
  'HealthReport',
  s.object({
    status,
    version: s.string({ maxLength: 100 }),
    serviceId: s.string({ maxLength: 100 }),
    description: s.string({ maxLength: 200 }),
    output: s.optional(s.string({ maxLength: 200 })),
    checks: s.record(s.array(check, { maxItems: 10 }), {
      maxProperties: 50,
      description: 'Per component (redis, database, eventloop:lag, memory:heapUsed, memory:rss, uptime): its observations.',
    }),
  }),
);
