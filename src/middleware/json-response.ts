// res.json for a JSON-only API. Express's res.json and res.send work the Content-Type out again on
// every call (a mime lookup, then a parse and re-format to add the charset), look up the JSON and
// ETag settings, check freshness and copy bodies of 1000 characters or more into a Buffer. Rampart
// answers JSON only, sets no validators (ETags are off; nothing is conditional) and uses no JSON
// settings, so the app's response prototype gets a json() that does the same job with the type
// fixed once. Responses to HEAD carry the headers of GET without the body, as in Express.
import type { Express, Response } from 'express';

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Sends text that already is JSON (e.g. a cached body): type, length, then the body. */
export function sendJsonText(res: Response, body: string): Response {
  const type = res.getHeader('Content-Type');
  if (type === undefined) res.setHeader('Content-Type', JSON_CONTENT_TYPE);
  else if (typeof type === 'string' && !/;\s*charset=/i.test(type)) res.setHeader('Content-Type', `${type}; charset=utf-8`);
  const status = res.statusCode;
  if (status === 204 || status === 304) {
    // These carry no body, so no type or length either.
    res.removeHeader('Content-Type');
    res.removeHeader('Content-Length');
    res.end();
    return res;
  }
  if (!res.hasHeader('Transfer-Encoding')) res.setHeader('Content-Length', Buffer.byteLength(body));
  if (res.req.method === 'HEAD') res.end();
  else res.end(body);
  return res;
}

export function leanJsonResponses(app: Express): void {
  app.response.json = function json(this: Response, value: unknown) {
    return sendJsonText(this, JSON.stringify(value) ?? '');
  };
}
