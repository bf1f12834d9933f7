/**
 * The response head of an app: {@link ResponseHead} (the status and headers
 * given to `startResponse`, checked when it is called, so the app can still
 * handle the error) and {@link ResponseStart} (PEP 3333's rules for
 * `startResponse`, and the head going out with the first body bytes).
 *
 * @module
 */

import { assertHeaderName, assertHeaderValue } from '../http/headers.js';
import { statusHasNoBody, statusLineText } from '../http/status.js';
import type { IRequest } from '../iweb.js';
import { AppProtocolError } from './errors.js';

const STATUS = /^([1-9][0-9]{2})(?: (.*))?$/s;
/** A `Content-Length` value the gateway accepts: decimal digits, a safe integer. */
const LENGTH = /^[0-9]{1,15}$/;

/** A checked `startResponse(status, headers)`. */
export class ResponseHead {
  /** The status code (200–999). */
  readonly code: number;
  /** The reason phrase as given (`undefined`: the registered one). */
  readonly reason: string | undefined;
  /** The header fields, in order (repeated names kept). */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The `Content-Length` the app declared, or -1. */
  readonly declaredLength: number;

  private constructor(
    code: number,
    reason: string | undefined,
    headers: ReadonlyArray<readonly [string, string]>,
    declaredLength: number,
  ) {
    this.code = code;
    this.reason = reason;
    this.headers = headers;
    this.declaredLength = declaredLength;
  }

  /**
   * Checks `startResponse`'s arguments: `status` is `"CODE REASON"` (or
   * just `"CODE"`) with a final status code (200–999) and a reason without
   * control characters; `headers` is an iterable of `[name, value]` string
   * pairs with token names and valid field values, and at most one
   * `Content-Length`, a decimal number (the HTTP layer would otherwise drop
   * a malformed one silently and the body would go out chunked).
   * @throws AppProtocolError for a malformed status or headers list, or a
   *   malformed or repeated `Content-Length`.
   * @throws InvalidHeaderError for an invalid header name or value (or reason).
   */
  static parse(status: unknown, headers: unknown): ResponseHead {
    if (typeof status !== 'string') {
      throw new AppProtocolError('startResponse(): status must be a string such as "200 OK"');
    }
    const m = STATUS.exec(status);
    const code = m === null ? 0 : Number(m[1]);
    if (m === null || code < 200) {
      throw new AppProtocolError(
        `startResponse(): status must be "CODE REASON" with a final code (200-999), got ${JSON.stringify(status)}`,
      );
    }
    const reason = m[2];
    statusLineText(code, reason); // checks the reason (InvalidHeaderError)
    if (
      headers === null ||
      typeof headers !== 'object' ||
      typeof (headers as Iterable<unknown>)[Symbol.iterator] !== 'function' ||
      typeof headers === 'string'
    ) {
      throw new AppProtocolError(
        'startResponse(): headers must be an array of [name, value] pairs',
      );
    }
    const fields: (readonly [string, string])[] = [];
    let declared = -1;
    for (const field of headers as Iterable<unknown>) {
      if (!Array.isArray(field) || field.length !== 2) {
        throw new AppProtocolError(
          `startResponse(): each header must be a [name, value] pair, got ${JSON.stringify(field)}`,
        );
      }
      const [name, value] = field as [unknown, unknown];
      assertHeaderName(name as string);
      assertHeaderValue(name as string, value as string);
      if ((name as string).length === 14 && (name as string).toLowerCase() === 'content-length') {
        if (declared !== -1 || !LENGTH.test(value as string)) {
          throw new AppProtocolError(
            declared !== -1
              ? 'startResponse(): more than one Content-Length header'
              : `startResponse(): Content-Length must be a decimal number of bytes, got ${JSON.stringify(value)}`,
          );
        }
        declared = Number(value);
      }
      fields.push([name as string, value as string]);
    }
    return new ResponseHead(code, reason, fields, declared);
  }

  /** Sets the status and adds the header fields on `request` (before its head is sent). */
  applyTo(request: IRequest): void {
    request.setResponseCode(this.code, this.reason);
    const out = request.responseHeaders;
    for (const [name, value] of this.headers) out.add(name, value);
  }
}

/**
 * The head of one response: what `startResponse` set, and whether it went
 * out. Nothing is sent by `startResponse` itself: {@link send} applies the
 * head to the request just before the first body bytes (or the end).
 */
export class ResponseStart {
  readonly #request: IRequest;
  #head: ResponseHead | null = null;
  #sent = false;
  #bodiless = false;
  #closeAfter = false;
  #knownLength = -1;

  constructor(request: IRequest) {
    this.#request = request;
  }

  /** Whether `startResponse` was called. */
  get started(): boolean {
    return this.#head !== null;
  }

  /** Whether the head went out (applied to the request). */
  get sent(): boolean {
    return this.#sent;
  }

  /**
   * The `Content-Length` the app declared if `written` body bytes fall short
   * of it on a response that carries a body (not HEAD, 204 or 304), else -1.
   */
  shortLength(written: number): number {
    const head = this.#head;
    if (head === null || head.declaredLength <= written) return -1;
    if (this.#request.method === 'HEAD' || statusHasNoBody(head.code)) return -1;
    return head.declaredLength;
  }

  /** Whether the body is counted but not sent (HEAD, 204, 304): known once the head went out. */
  get bodiless(): boolean {
    return this.#bodiless;
  }

  /**
   * `startResponse(status, headers, error)` (PEP 3333): the first call, or
   * a later one with `error` while the head has not gone out, sets the head.
   * @throws `error` itself if given once the head went out.
   * @throws AppProtocolError for a second call without `error`, or bad arguments.
   * @throws InvalidHeaderError for an invalid header name or value.
   */
  start(status: unknown, headers: unknown, error: unknown): void {
    if (error !== undefined && error !== null) {
      // Too late to change the head once it went out: the error goes back.
      if (this.#sent) throw error;
    } else if (this.#head !== null) {
      throw new AppProtocolError('startResponse() called twice without an error');
    }
    this.#head = ResponseHead.parse(status, headers);
  }

  /** The body's length is known (an array body): sent as `Content-Length` unless the app gave one. */
  knownLength(bytes: number): void {
    this.#knownLength = bytes;
  }

  /** The connection must not carry another request: `Connection: close`, or closed after this response. */
  closeAfter(): void {
    if (this.#sent) (this.#request as IRequest & { forceClose?(): void }).forceClose?.();
    else this.#closeAfter = true;
  }

  /** Whether {@link closeAfter} was called before the head went out. */
  get closing(): boolean {
    return this.#closeAfter;
  }

  /**
   * Applies the head to the request (once, before its first write).
   * @throws AppProtocolError if `startResponse` was not called.
   */
  send(): void {
    if (this.#sent) return;
    const head = this.#head;
    if (head === null) {
      throw new AppProtocolError('the app sent body bytes before calling startResponse()');
    }
    this.#sent = true;
    const request = this.#request;
    head.applyTo(request);
    if (this.#knownLength >= 0 && head.declaredLength < 0) {
      request.setHeader('Content-Length', String(this.#knownLength));
    }
    if (this.#closeAfter) request.setHeader('Connection', 'close');
    this.#bodiless = request.method === 'HEAD' || statusHasNoBody(head.code);
  }
}

/** Sends `body` as the whole response (with its length) and finishes `request`. */
export function respondWhole(request: IRequest, body: Uint8Array | string): void {
  const r = request as IRequest & { respond?: (body: Uint8Array | string) => void };
  if (typeof r.respond === 'function') {
    r.respond(body);
    return;
  }
  request.setHeader('Content-Length', String(Buffer.byteLength(body)));
  request.write(body);
  request.finish();
}

/** The byte length of an array body, or -1 if an element is not a chunk. */
export function arrayLength(items: readonly unknown[]): number {
  let total = 0;
  for (const item of items) {
    if (typeof item === 'string') total += Buffer.byteLength(item, 'utf8');
    else if (item instanceof Uint8Array) total += item.length;
    else return -1;
  }
  return total;
}
