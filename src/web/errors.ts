/**
 * Errors a resource throws to answer with a status, and the small HTML error
 * page shared by {@link HTTPException} and the resource tree's `ErrorPage`.
 *
 * The contract with the site (`Site`, and the test helper `render` of
 * `torsion/testing`): when `render` throws, or its Promise/Deferred rejects,
 * the site asks {@link HTTPException.from} about the error.
 *
 * - It returns an {@link HTTPException} (the error itself, or a wrapper of
 *   another `HTTPError`, e.g. the 413 of `request.body()`): if the response
 *   head has not been sent yet, the site drops the response headers set so
 *   far and calls `exception.render(request)`, which sets the status and
 *   the exception's headers and returns the body; the site writes that body
 *   (with `Content-Length`) and finishes. Nothing is logged: it is an
 *   answer, not a failure.
 * - It returns `null` (any other error): a 500, logged.
 * - If the head was already sent, any error can only end the connection
 *   (the site aborts it: a truncated response must not look complete).
 *
 * @module
 */

import { InvalidArgumentError } from '../reactor/errors.js';
import { HTTPError } from './http/errors.js';
import type { HeadersInit } from './http/headers.js';
import { Headers } from './http/headers.js';
import { reasonPhrase } from './http/status.js';
import type { IRequest } from './iweb.js';

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** `text` with `& < > " '` replaced by entities: safe in HTML text and quoted attributes. */
export function escapeHTML(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/**
 * The page Twisted's `ErrorPage` renders: a title `"CODE - brief"`, a heading
 * `brief` and a paragraph `detail`, both HTML-escaped, as UTF-8 bytes.
 */
export function errorPageBody(status: number, brief: string, detail: string): Buffer {
  const b = escapeHTML(brief);
  return Buffer.from(
    `<!DOCTYPE html>
<html>
  <head><meta charset="utf-8"><title>${status} - ${b}</title></head>
  <body>
    <h1>${b}</h1>
    <p>${escapeHTML(detail)}</p>
  </body>
</html>
`,
    'utf8',
  );
}

/** Options of {@link HTTPException}. */
export interface HTTPExceptionOptions {
  /** Response headers to set (replacing what the resource had set under those names). */
  headers?: HeadersInit;
  /**
   * The response body, sent as it is (strings as UTF-8). Without it the body
   * is a small HTML page naming the status and the message (escaped).
   */
  body?: Uint8Array | string;
  /** Content-Type of `body` (default `text/plain; charset=utf-8` when `body` is given). */
  contentType?: string;
  /** The underlying error, kept as `cause`. */
  cause?: unknown;
}

/**
 * An error that answers with an HTTP status (Hono's `HTTPException`): throw
 * it from `render`/`render_GET`… (or reject with it) and the site answers
 * `status` with its headers and body instead of a 500, without logging.
 *
 * @example
 * ```ts
 * render_GET(request: IRequest) {
 *   if (!allowed(request)) throw new HTTPException(403, 'members only');
 *   return 'welcome';
 * }
 * ```
 */
export class HTTPException extends HTTPError {
  /** Headers set on the response when it renders. */
  readonly headers: Headers;
  /** The explicit body, or `undefined` for the default HTML page. */
  readonly body: Uint8Array | string | undefined;
  /** Content-Type sent with {@link body}. */
  readonly contentType: string;

  /**
   * @param status - an integer from 300 to 599 (a 3xx needs a `Location` header).
   * @param message - shown (escaped) in the default page; default: the reason phrase.
   * @throws InvalidArgumentError for a status out of range.
   * @throws InvalidHeaderError for an invalid header name or value in `options.headers`.
   */
  constructor(status: number, message?: string, options: HTTPExceptionOptions = {}) {
    if (!Number.isInteger(status) || status < 300 || status > 599) {
      throw new InvalidArgumentError(
        `HTTPException status must be an integer from 300 to 599, got ${String(status)}`,
      );
    }
    super(status, message ?? reasonPhrase(status), 'TORSION_ERR_HTTP_EXCEPTION', {
      cause: options.cause,
    });
    this.headers = new Headers(options.headers);
    this.body = options.body;
    this.contentType = options.contentType ?? 'text/plain; charset=utf-8';
  }

  /**
   * Sets the response code and headers on `request` and returns the body to
   * send (the site writes it with `Content-Length` and finishes). Call it
   * only before the response head was sent. It may be called for several
   * requests: the exception is not changed.
   */
  render(request: IRequest): Uint8Array {
    request.setResponseCode(this.status);
    let body: Uint8Array;
    if (this.body === undefined) {
      request.setHeader('Content-Type', 'text/html; charset=utf-8');
      body = errorPageBody(this.status, reasonPhrase(this.status), this.message);
    } else {
      request.setHeader('Content-Type', this.contentType);
      body = typeof this.body === 'string' ? Buffer.from(this.body, 'utf8') : this.body;
    }
    // After Content-Type, so an explicit header wins over the default.
    const seen = new Set<string>();
    for (const [name, value] of this.headers) {
      const lower = name.toLowerCase();
      if (seen.has(lower)) request.responseHeaders.add(name, value);
      else {
        seen.add(lower);
        request.setHeader(name, value);
      }
    }
    return body;
  }

  /**
   * The exception to answer `error` with: `error` itself if it is an
   * `HTTPException`; a new one with the same status and message (and `error`
   * as its cause) if it is another {@link HTTPError} with a status from 300
   * to 599 (e.g. the 413 of `request.body()`); otherwise `null` (a 500).
   */
  static from(error: unknown): HTTPException | null {
    if (error instanceof HTTPException) return error;
    if (error instanceof HTTPError && error.status >= 300 && error.status <= 599) {
      return new HTTPException(error.status, error.message, { cause: error });
    }
    return null;
  }
}
