// Validation with express-validator: chains are declared once at module load; this middleware runs
// them and turns failures into 422 validation_failed listing every failing field. The submitted
// value is never copied into the answer (or a log): it may be a password.
import type { Request, RequestHandler } from 'express';
import type { ContextRunner, ValidationError } from 'express-validator';
import { validationResult } from 'express-validator';
import { AppError, type ErrorDetail } from '../lib/errors';

function toDetails(error: ValidationError): ErrorDetail[] {
  switch (error.type) {
    case 'field':
      return [{ field: error.path, location: error.location, message: String(error.msg) }];
    case 'unknown_fields':
      return error.fields.map((f) => ({ field: f.path, location: f.location, message: 'is not allowed' }));
    case 'alternative':
      return error.nestedErrors.flatMap(toDetails);
    case 'alternative_grouped':
      return error.nestedErrors.flat().flatMap(toDetails);
  }
}

export interface ValidateOptions {
  /**
   * A cheap test that, when true, guarantees every chain would pass (e.g. one regular expression
   * for a UUID path parameter): the chains are then not run. A chain run costs several objects and
   * promises per field on every request; on a cached read that is a large share of the work.
   * When the test says false the chains run as usual and produce the 422.
   */
  passes?: (req: Request) => boolean;
}

export function validate(chains: readonly ContextRunner[], options: ValidateOptions = {}): RequestHandler {
  const { passes } = options;
  const run = runChains(chains);
  // Synchronous when the fast test passes: no promise on that path.
  return passes ? (req, res, next) => (passes(req) ? next() : run(req, res, next)) : run;
}

function runChains(chains: readonly ContextRunner[]): RequestHandler {
  return async (req, _res, next) => {
    for (const chain of chains) await chain.run(req);
    const result = validationResult(req);
    if (result.isEmpty()) {
      next();
      return;
    }
    // One entry per field and location, first message wins: clients fix fields, not rules.
    const seen = new Set<string>();
    const details = result.array().flatMap(toDetails).filter((d) => {
      const key = `${d.location}:${d.field}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    next(new AppError('validation_failed', { details }));
  };
}
