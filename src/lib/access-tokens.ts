// Access tokens: short-lived JWTs (RFC 9068 profile: typ at+jwt), HS256 by default, keyed by kid
// so that a secret can be rotated without logging everyone out. Keys are KeyObjects built once:
// given a string, jsonwebtoken tries createPublicKey() on every call (about 300 µs, then throws).
import { createHash, createSecretKey, randomUUID, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Config } from '../config';
import { AppError } from './errors';

const ACCESS_TOKEN_TYPE = 'at+jwt';
const ALGORITHM = 'HS256';
const CLOCK_TOLERANCE_S = 5;
/**
 * Tokens verified recently, remembered by their exact text so that the next request carrying one
 * skips decoding and the HMAC (about a tenth of an authenticated read's CPU). Bounded: the oldest
 * goes first. Only what verify() would decide again is skipped; expiry is checked on every use, and
 * revocation is not this class's business (the session check runs on every request).
 */
const VERIFIED_CACHE_SIZE = 10_000;

export interface AccessClaims {
  sub: string;
  sid: string;
  jti: string;
  iat: number;
  exp: number;
}

export interface IssuedAccessToken {
  token: string;
  jti: string;
  expiresIn: number; // seconds
}

/** A stable, non-secret identifier for a key: the same on every worker, reveals nothing usable. */
export function keyId(secret: string): string {
  return createHash('sha256').update(`rampart-kid:${secret}`).digest('base64url').slice(0, 16);
}

function invalid(reason: string): AppError {
  return new AppError('invalid_token', { cause: new Error(reason) });
}

export class AccessTokens {
  private readonly currentKid: string;
  private readonly keys = new Map<string, KeyObject>();
  private readonly ttlSeconds: number;
  private readonly verified = new Map<string, Readonly<AccessClaims>>();

  constructor(private readonly config: Config['jwt']) {
    this.currentKid = keyId(config.accessSecret);
    this.keys.set(this.currentKid, createSecretKey(Buffer.from(config.accessSecret, 'utf8')));
    for (const previous of config.previousAccessSecrets) {
      this.keys.set(keyId(previous), createSecretKey(Buffer.from(previous, 'utf8')));
    }
    this.ttlSeconds = Math.max(1, Math.round(config.accessTtlMs / 1000));
  }

  issue(userId: string, sessionId: string): IssuedAccessToken {
    const jti = randomUUID();
    const token = jwt.sign({ sid: sessionId }, this.keys.get(this.currentKid)!, {
      algorithm: ALGORITHM,
      expiresIn: this.ttlSeconds,
      issuer: this.config.issuer,
      audience: this.config.audience,
      subject: userId,
      jwtid: jti,
      header: { alg: ALGORITHM, typ: ACCESS_TOKEN_TYPE, kid: this.currentKid },
    });
    return { token, jti, expiresIn: this.ttlSeconds };
  }

  /** Verifies signature, algorithm, type, key, times, issuer and audience; throws invalid_token. */
  verify(token: string): AccessClaims {
    const known = this.verified.get(token);
    if (known === undefined) return this.remember(token, this.check(token));
    // As jsonwebtoken decides it: expired from the second exp + tolerance on.
    if (Math.floor(Date.now() / 1000) < known.exp + CLOCK_TOLERANCE_S) return known;
    this.verified.delete(token);
    throw invalid('expired');
  }

  private remember(token: string, claims: AccessClaims): AccessClaims {
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
    const frozen = Object.freeze(claims);
    this.verified.set(token, frozen);
    return frozen;
  }

  private check(token: string): AccessClaims {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload !== 'object') throw invalid('not a JWT');
    const { header } = decoded;
    if (header.alg !== ALGORITHM) throw invalid('algorithm not allowed');
    if (typeof header.typ !== 'string' || header.typ.toLowerCase().replace(/^application\//, '') !== ACCESS_TOKEN_TYPE) {
      throw invalid('not an access token');
    }
    // Only a lookup in a Map built from configuration: a kid never names a file, URL or query.
    const key = typeof header.kid === 'string' ? this.keys.get(header.kid) : undefined;
    if (!key) throw invalid('unknown kid');
    let payload: jwt.JwtPayload;
    try {
      payload = jwt.verify(token, key, {
        algorithms: [ALGORITHM],
        issuer: this.config.issuer,
        audience: this.config.audience,
        clockTolerance: CLOCK_TOLERANCE_S,
      }) as jwt.JwtPayload;
    } catch (err) {
      throw invalid((err as Error).name === 'TokenExpiredError' ? 'expired' : (err as Error).message);
    }
    // jsonwebtoken accepts tokens without exp: a token that never expires is not an access token.
    if (typeof payload.exp !== 'number' || typeof payload.iat !== 'number') throw invalid('missing exp or iat');
    if (typeof payload.sub !== 'string' || typeof payload.jti !== 'string' || typeof payload.sid !== 'string') {
      throw invalid('missing sub, jti or sid');
    }
    return { sub: payload.sub, sid: payload.sid, jti: payload.jti, iat: payload.iat, exp: payload.exp };
  }
}
