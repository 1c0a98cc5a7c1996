// What the app adds to Express's request, declared in one place. The types come from the layers
// that set the properties; this file only declares them, so it may import from any layer.
import type { AccessClaims } from '../lib/access-tokens';
import type { ValidatedInput } from '../http/validation';
import type { EarlyRevocationCheck } from '../middleware/authenticate';

declare module 'express-serve-static-core' {
  interface Request {
    /** The request id (request-id middleware): the incoming well-formed X-Request-Id, or a new UUID. */
    id: string;
    /** The verified access token's claims, on bearer routes (authenticate). */
    auth?: AccessClaims;
    /** The revocation read started before the rate limiter (startRevocationCheck). */
    earlyRevocationCheck?: EarlyRevocationCheck;
    /**
     * What the route's validator accepted, converted (integers parsed, strings trimmed) and
     * defaulted: one object per request, handed to the handler as its input.
     */
    validated?: ValidatedInput;
  }
}
