/**
 * Sending a fetch handler's web-standard `Response` on a torsion
 * {@link IRequest}: its status and headers ({@link applyResponseHead}) and
 * its body, pulled from the body stream only while the client's socket is
 * writable ({@link ResponseWriter}, a push producer).
 *
 * @module
 */

import type { ReadableStreamDefaultReader, ReadableStreamReadResult } from 'node:stream/web';
import { ConnectionLost, TorsionError } from '../../reactor/errors.js';
import type { IDelayedCall, IPushProducer, IReactorTime } from '../../reactor/interfaces.js';
import { type IRequest, NOT_DONE_YET } from '../iweb.js';

/**
 * A fetch handler's answer cannot be sent: it is not a `Response`, it is a
 * network error (`Response.error()`), or its body was already used or
 * locked. Answered 500 (and logged) by the site.
 */
export class FetchResponseError extends TorsionError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'TORSION_ERR_FETCH_RESPONSE', options);
  }
}

/**
 * A fetch response's body failed while it was sent: its stream errored
 * (`cause` holds the stream's error), it gave a chunk that is not a
 * `Uint8Array`, or it ended short of its `Content-Length`. Before the head
 * went out the site answers 500; after, it aborts the connection (a
 * truncated response must not look complete). Logged either way.
 */
export class FetchBodyError extends TorsionError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'TORSION_ERR_FETCH_BODY', options);
  }
}

const DIGITS = /^\d{1,15}$/;

function ignore(): void {}

/** Cancels a response body nobody will read (HEAD, a lost client); never rejects. */
export function discardBody(response: Response): void {
  const body = response.body;
  if (body !== null && !body.locked) body.cancel().then(undefined, ignore);
}

/** Whether `value` looks like a web `Response` (duck-typed: other realms and polyfills pass). */
export function isResponse(value: unknown): value is Response {
  if (value instanceof Response) return true;
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Partial<Response>;
  return (
    typeof r.status === 'number' &&
    typeof r.headers === 'object' &&
    r.headers !== null &&
    typeof r.headers.forEach === 'function' &&
    (r.body === null || typeof r.body?.getReader === 'function')
  );
}

/**
 * Sets `request`'s status (with the `Response`'s `statusText` as the reason
 * phrase when it has one) and response headers from `response`: every
 * field, each `Set-Cookie` as its own line (`headers.getSetCookie()`).
 * Returns the `Content-Length` the response declares, or -1.
 *
 * @throws FetchResponseError for a network-error response (status 0).
 * @throws InvalidHeaderError for a field value torsion cannot send (e.g. a
 *   character above U+00FF).
 */
export function applyResponseHead(request: IRequest, response: Response): number {
  const status = response.status;
  if (status < 200 || status > 999) {
    throw new FetchResponseError(
      `the handler returned a response with status ${status} (a network error)`,
    );
  }
  const text = response.statusText;
  request.setResponseCode(status, text === '' || text === undefined ? undefined : text);
  const out = request.responseHeaders;
  const headers = response.headers;
  let declared = -1;
  let cookies = false;
  headers.forEach((value, name) => {
    if (name === 'set-cookie') {
      cookies = true;
      return;
    }
    if (name === 'content-length' && DIGITS.test(value)) declared = Number(value);
    out.add(name, value);
  });
  if (cookies) {
    const list =
      typeof headers.getSetCookie === 'function'
        ? headers.getSetCookie()
        : [headers.get('set-cookie') ?? ''];
    for (const cookie of list) out.add('Set-Cookie', cookie);
  }
  return declared;
}

/**
 * Streams a `Response` body to `request`: a push producer registered on the
 * request, so it reads the next chunk from the body's reader only while the
 * client's socket is writable (`pauseProducing` stops the reads,
 * `resumeProducing` starts them again) — the body stream is then paused
 * upstream, as far as its source honours pulls.
 *
 * Framing: the `Content-Length` the response declares, when it does (a body
 * that ends short of it, or runs past it, is a {@link FetchBodyError}).
 * Otherwise, a body whose end comes right after its first chunk is sent with
 * a `Content-Length` and its head in one write; a longer one is chunked. The
 * head waits for the first chunk, but at most until the reactor's next turn
 * (one delayed call per response), so a slow stream (server-sent events)
 * sends its head at once.
 *
 * Endings: the end of the body finishes the request and resolves
 * {@link start}'s promise with `NOT_DONE_YET`; a failure rejects it with a
 * {@link FetchBodyError} (the site answers 500 or aborts the connection);
 * the connection's loss (`stopProducing`) cancels the body's reader and
 * resolves quietly.
 */
export class ResponseWriter implements IPushProducer {
  readonly #request: IRequest;
  readonly #reader: ReadableStreamDefaultReader<unknown>;
  readonly #reactor: IReactorTime;
  /** The declared Content-Length, or -1. */
  readonly #declared: number;
  #resolve: (value: typeof NOT_DONE_YET) => void = ignore;
  #reject: (reason: unknown) => void = ignore;
  #paused = false;
  #reading = false;
  #ended = false;
  #headSent = false;
  /** The first chunk, kept until the second read shows whether the body ends there. */
  #held: Uint8Array | null = null;
  #timer: IDelayedCall | null = null;
  #written = 0;

  /**
   * @param reader - the response body's reader (the writer owns it).
   * @param declared - the response's `Content-Length`, or -1.
   */
  constructor(
    request: IRequest,
    reader: ReadableStreamDefaultReader<unknown>,
    reactor: IReactorTime,
    declared: number,
  ) {
    this.#request = request;
    this.#reader = reader;
    this.#reactor = reactor;
    this.#declared = declared;
  }

  /**
   * Registers on the request and starts reading. Call once, after the
   * status and headers are set.
   */
  start(): Promise<typeof NOT_DONE_YET> {
    const promise = new Promise<typeof NOT_DONE_YET>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    try {
      // Stops us at once if the client is already gone; pauses us if it is slow.
      this.#request.registerProducer(this, true);
    } catch (e) {
      this.#fail(e);
      return promise;
    }
    if (this.#ended) return promise;
    this.#timer = this.#reactor.callLater(0, ResponseWriter.#flushHead, this);
    this.#pull();
    return promise;
  }

  // ------------------------------------------------------------------ IPushProducer

  /** The client reads slowly: no more reads from the body until {@link resumeProducing}. */
  pauseProducing(): void {
    this.#paused = true;
  }

  /** The client caught up: read again (undoes a pause only). */
  resumeProducing(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#reading && !this.#ended) this.#pull();
  }

  /** The connection is gone: cancel the body stream; nothing more is sent. */
  stopProducing(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#held = null;
    this.#cancelTimer();
    this.#reader
      .cancel(new ConnectionLost('the client went away before the response was sent'))
      .then(undefined, ignore);
    this.#resolve(NOT_DONE_YET);
  }

  // ------------------------------------------------------------------ internals

  #pull(): void {
    this.#reading = true;
    this.#reader.read().then(this.#onRead, this.#onReadError);
  }

  // Bound once per response (not per chunk).
  readonly #onRead = (result: ReadableStreamReadResult<unknown>): void => {
    this.#reading = false;
    if (this.#ended) return;
    if (result.done) {
      this.#end();
      return;
    }
    const chunk = result.value;
    if (!(chunk instanceof Uint8Array)) {
      this.#fail(
        new FetchBodyError(
          `the response body gave a ${chunk === null ? 'null' : typeof chunk} chunk: a body stream must give Uint8Arrays`,
        ),
      );
      return;
    }
    if (chunk.byteLength > 0) {
      if (this.#headSent) this.#write(chunk);
      else if (this.#declared < 0 && this.#held === null) this.#held = chunk;
      else {
        this.#sendHead();
        this.#write(chunk);
      }
      if (this.#ended) return;
    }
    if (!this.#paused) this.#pull();
  };

  readonly #onReadError = (reason: unknown): void => {
    this.#reading = false;
    this.#fail(new FetchBodyError('the response body stream failed', { cause: reason }));
  };

  /** The head (with the held first chunk, if any) goes out now. */
  #sendHead(): void {
    this.#cancelTimer();
    this.#headSent = true;
    const held = this.#held;
    this.#held = null;
    if (held !== null) this.#write(held);
    else this.#writeHeadOnly();
  }

  #writeHeadOnly(): void {
    try {
      this.#request.write('');
    } catch (e) {
      this.#fail(e);
    }
  }

  #write(chunk: Uint8Array): void {
    try {
      this.#request.write(chunk);
    } catch (e) {
      this.#fail(e);
      return;
    }
    this.#written += chunk.byteLength;
  }

  /** The body ended: finish (one write with its head when it was one chunk). */
  #end(): void {
    const request = this.#request;
    if (!this.#headSent) {
      this.#cancelTimer();
      this.#headSent = true;
      const held = this.#held;
      this.#held = null;
      if (held !== null) {
        if (this.#declared < 0) request.setHeader('Content-Length', String(held.byteLength));
        this.#write(held);
        if (this.#ended) return;
      }
    }
    const declared = this.#declared;
    if (declared >= 0 && this.#written !== declared) {
      this.#fail(
        new FetchBodyError(
          `the response body ended after ${this.#written} bytes, short of its Content-Length ${declared}`,
        ),
      );
      return;
    }
    this.#ended = true;
    try {
      request.finish();
    } catch (e) {
      this.#reject(e);
      return;
    }
    this.#resolve(NOT_DONE_YET);
  }

  /** Sending failed: cancel the body, let go of the request, reject (the site answers or aborts). */
  #fail(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#held = null;
    this.#cancelTimer();
    this.#reader.cancel(error).then(undefined, ignore);
    this.#request.unregisterProducer();
    this.#reject(error);
  }

  #cancelTimer(): void {
    const timer = this.#timer;
    if (timer === null) return;
    this.#timer = null;
    if (timer.active()) timer.cancel();
  }

  static #flushHead(writer: ResponseWriter): void {
    writer.#timer = null;
    if (writer.#ended || writer.#headSent) return;
    writer.#sendHead();
  }
}
