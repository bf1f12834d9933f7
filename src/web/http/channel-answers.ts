/**
 * The answers a channel gives by itself, without a resource: `100
 * Continue`, 417 for an expectation it cannot meet, 404 when it has no
 * site, and the short response to a protocol error (4xx/5xx, then close).
 *
 * @module
 */

import type { HTTPError } from './errors.js';
import type { Request } from './request.js';
import { reasonPhrase, statusLineText } from './status.js';

/** The interim response to `Expect: 100-continue`. */
export const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

/**
 * The answer to an `Expect` this server cannot meet (RFC 9110 §10.1.1),
 * given in the request's turn instead of dispatching it. The request's
 * body, if any and not already complete, is not read: the client may be
 * withholding it for an interim response, so the response says
 * `Connection: close` and the connection closes after it (see
 * `Request`'s framing rules).
 */
export function expectationFailed(request: Request): void {
  request.setResponseCode(417);
  request.setHeader('Content-Type', 'text/plain; charset=utf-8');
  request.respond('417 Expectation Failed: the only expectation supported is 100-continue\n');
}

/** What a channel without a site answers. */
export function notFound(request: Request): void {
  request.setResponseCode(404);
  request.setHeader('Content-Type', 'text/plain; charset=utf-8');
  request.respond('404 Not Found\n');
}

/**
 * The whole response to a protocol error (`dateFields`: the `Date` and
 * `Server` lines): a `text/plain` body naming the status and what was
 * wrong, and `Connection: close`. Returns it and its body's length.
 */
export function errorResponse(
  error: HTTPError,
  dateFields: string,
): { response: string; bodyLength: number } {
  const status = error.status;
  const text = `${status} ${reasonPhrase(status)}: ${error.message}\n`;
  const bodyLength = Buffer.byteLength(text);
  return {
    response:
      `${statusLineText(status)}${dateFields}Content-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${bodyLength}\r\nConnection: close\r\n\r\n${text}`,
    bodyLength,
  };
}
