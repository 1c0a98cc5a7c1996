// gzip for responses of 1 kB or more. Streamed responses (Server-Sent Events) are never buffered
// by the compressor, and a response can opt out with Cache-Control: no-transform.
import type { Request, Response, RequestHandler } from 'express';
import compression from 'compression';

function shouldCompress(req: Request, res: Response): boolean {
  const type = res.getHeader('Content-Type');
  if (typeof type === 'string' && type.startsWith('text/event-stream')) return false;
  return compression.filter(req, res);
}

export function responseCompression(): RequestHandler {
  const compress = compression({ threshold: 1024, filter: shouldCompress });
  return (req, res, next) => {
    // Clients that do not accept gzip skip the compressor's per-response wrapping entirely; the
    // answer still says it depends on Accept-Encoding, as it would with the compressor.
    const accepted = req.headers['accept-encoding'];
    if (accepted === undefined || !/\bgzip\b|\*/.test(accepted)) {
      res.vary('Accept-Encoding');
      return next();
    }
    compress(req, res, next);
  };
}
