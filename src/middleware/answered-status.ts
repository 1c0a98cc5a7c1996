// The status a client was answered with, for the access log and the request metrics.
import type { ServerResponse } from 'node:http';

/**
 * res.statusCode, except for a request Node cut off at its request timeout (the body did not arrive
 * in time, REQUEST_TIMEOUT_MS): the app never answered it, Node wrote 408 itself and closed the
 * connection, while res.statusCode still holds its initial 200.
 */
export function answeredStatus(res: ServerResponse): number {
  if (!res.headersSent && (res.req.socket.errored as { code?: unknown } | null)?.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return res.statusCode;
}
