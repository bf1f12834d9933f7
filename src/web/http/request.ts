/**
 * {@link Request}: one HTTP exchange on an {@link HTTPChannel}, as a resource
 * sees it (Twisted's `http.Request` + `server.Request`, implementing
 * {@link IRequest}).
 *
 * The request decides its response's head and framing (`response-head.ts`
 * lays the bytes out: shared pre-encoded pieces, the resource's fields) and
 * writes it with the first body bytes into the channel's output; small body
 * pieces are copied there with their framing, big ones go to the channel
 * as they are (chunked framing is a size line and a CRLF around them).
 * Everything about the connection (pipelining, keep-alive, flow control,
 * timeouts) is the channel's.
 *
 * Lazily computed (Hono's `??=`): `args`, cookies, the response headers and
 * the body object, so a request that never looks at them never pays.
 *
 * @module
 */

import { Deferred, fail, succeed } from '../../reactor/deferred.js';
import {
  AlreadyCalledError,
  ConnectionLost,
  InvalidArgumentError,
  ProducerAlreadyRegistered,
  TransportClosedError,
} from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import type { IAddress, IPullProducer, IPushProducer } from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import type { CookieOptions, IRequest } from '../iweb.js';
import type { Session } from '../site.js';
import { authorityHostname, targetAuthority } from './authority.js';
import { RequestBody } from './body.js';
import type { HTTPChannel } from './channel.js';
import { CRLF, encodeLastChunk, LAST_CHUNK } from './chunked.js';
import { formatCookie, parseCookies } from './cookies.js';
import { ContentLengthMismatch } from './errors.js';
import { Headers } from './headers.js';
import type { FastBuffer } from './output.js';
import type { RequestHead } from './parser.js';
import { absolutePath, parseQuery } from './query.js';
import {
  checkResponseLength,
  chunkRoom,
  encodeHead,
  F_CHUNKED,
  F_CLOSE,
  F_LENGTH,
  F_NONE,
  HEAD_PLAN,
  headLength,
  INLINE_BODY,
  planHead,
  putBody,
} from './response-head.js';
import { statusHasNoBody, statusLineText } from './status.js';

// Kept importable from here, where they were first defined.
export { formatCookie } from './cookies.js';
export { ContentLengthMismatch } from './errors.js';
export { parseQuery, pathSegments } from './query.js';

const EMPTY_ARGS: ReadonlyMap<string, string[]> = new Map();

// ====================================================================== helpers

function byteLength(data: Uint8Array | string): number {
  return typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
}

// ====================================================================== Request

/**
 * One request and its response on an {@link HTTPChannel} (see the module
 * documentation). Made by the channel when the request head is complete;
 * the channel dispatches it (calls its site's `process`) once every earlier
 * response on the connection has finished.
 *
 * Response rules, in order of the calls a resource makes:
 * - `setResponseCode`/`setHeader`/`addCookie` before the first `write`
 *   (later changes do not reach the wire);
 * - `write(data)`: the head goes out with the first bytes. Framing: the
 *   `Content-Length` set by the resource (or by the site for rendered
 *   bytes), else chunked on HTTP/1.1, else the end of the connection
 *   (HTTP/1.0). A `Transfer-Encoding` or `Connection` set by the resource is
 *   replaced by the channel's own (`Connection: close` from the resource is
 *   honoured). Bytes are counted but not sent for HEAD and for 1xx, 204 and
 *   304 responses. A HEAD response's head waits for `finish()`, so its
 *   `Content-Length` is what a GET would have sent when the resource wrote
 *   the body (or rendered it) without declaring one.
 * - `finish()`: the end of the body (the last chunk, with
 *   {@link responseTrailers} if any); a response shorter than its declared
 *   `Content-Length` closes the connection after it.
 */
export class Request implements IRequest {
  /** The connection this request came on. */
  readonly channel: HTTPChannel;
  /** The method, e.g. `'GET'` (case-sensitive, as sent). */
  readonly method: string;
  /** The request-target as sent, e.g. `'/a/b?x=1'`. */
  readonly uri: string;
  /** The path part of `uri`, still percent-encoded (for an absolute-form target, its path). */
  readonly path: string;
  /** `'HTTP/1.0'` or `'HTTP/1.1'` (HTTP/1.2–1.9 are processed as 1.1). */
  readonly clientproto: 'HTTP/1.0' | 'HTTP/1.1';
  /** The parsed head (framing details: `keepAlive`, `expectContinue`, `upgrade`…). */
  readonly head: RequestHead;
  /** Path segments already traversed (set by the site). */
  prepath: string[] = [];
  /** Path segments still to traverse (set by the site from {@link path}). */
  postpath: string[] = [];

  #query: string;
  #args: Map<string, string[]> | null = null;
  #cookies: Map<string, string> | null = null;
  #responseHeaders: Headers | null = null;
  #trailers: Headers | null = null;
  #body: RequestBody | null = null;
  #session: Session | null = null;

  #code = 200;
  #message: string | undefined = undefined;
  #startedWriting = false;
  #finished = false;
  #lost = false;
  #framing = F_NONE;
  #declared = -1; // the Content-Length sent, or -1
  #sent = 0; // body bytes passed to write (sent or, for bodiless responses, counted)
  #persistent = true;
  #continueSent = false;
  #producer: IPushProducer | IPullProducer | null = null;
  #streaming = false;
  #waiters: Deferred<void>[] | null = null;

  /**
   * Made by the channel (not by users).
   * @param body - the request's body, or `null` when the request has none
   *   (an empty, complete body is then made on first use).
   */
  constructor(channel: HTTPChannel, head: RequestHead, body: RequestBody | null) {
    this.channel = channel;
    this.head = head;
    this.method = head.method;
    const target = head.target;
    this.uri = target;
    this.clientproto = head.version === '1.1' ? 'HTTP/1.1' : 'HTTP/1.0';
    this.#body = body;
    const q = target.indexOf('?');
    this.#query = q === -1 ? '' : target.slice(q + 1);
    if (head.targetForm === 'absolute') this.path = absolutePath(target);
    else this.path = q === -1 ? target : target.slice(0, q);
  }

  // ------------------------------------------------------------------ request side

  /** The query arguments: each name to its values in order (parsed on first use; `+` is a space). */
  get args(): ReadonlyMap<string, string[]> {
    if (this.#query === '') return EMPTY_ARGS;
    this.#args ??= parseQuery(this.#query);
    return this.#args;
  }

  /** The request's header fields (the head's: made on first use). */
  get requestHeaders(): Headers {
    return this.head.headers;
  }

  /** The first value of a request header (several lines joined with `", "`), or `null`. */
  getHeader(name: string): string | null {
    return this.requestHeaders.get(name);
  }

  /** The value of a request cookie (RFC 6265; parsed on first use), or `null`. */
  getCookie(name: string): string | null {
    this.#cookies ??= parseCookies(this.requestHeaders.getAll('cookie'));
    return this.#cookies.get(name) ?? null;
  }

  /** The request body, flow-controlled (see {@link RequestBody}). */
  bodyStream(): RequestBody {
    this.#body ??= new RequestBody(null, null, true);
    return this.#body;
  }

  /**
   * The whole body, collected. Fails with a 413 `HTTPError` past `maxBytes`
   * (default: the site's `maxBodySize`, 10 MiB), at once when the
   * `Content-Length` says so; with `ConnectionLost` if the client goes away;
   * with InvalidArgumentError if the body is already being read. Calling it
   * again returns the same result.
   */
  body(maxBytes?: number): Promise<Buffer> {
    return this.bodyStream().collect(maxBytes ?? this.channel.maxBodySize);
  }

  /** The client's address (the transport's peer). */
  getClientAddress(): IAddress {
    return this.channel.transport.getPeer();
  }

  /** The server side's address. */
  getHost(): IAddress {
    return this.channel.transport.getHost();
  }

  /** Whether the connection is TLS (see {@link HTTPChannel.secure}). */
  isSecure(): boolean {
    return this.channel.secure;
  }

  /**
   * The host name the request was made to, without its port (Twisted's
   * `getRequestHostname`): the authority of an absolute-form target when
   * that is what was sent (`GET http://example.com:81/x` gives
   * `example.com`, whatever the `Host` field says: RFC 9112 §3.2.2), else
   * the `Host` field, else (an HTTP/1.0 request without one) the server's
   * own address. An IPv6 literal comes without its brackets (`[::1]:8080`
   * gives `::1`).
   */
  getRequestHostname(): string {
    const target = this.head.targetForm === 'absolute' ? targetAuthority(this.uri) : null;
    const authority = target !== null && target !== '' ? target : this.requestHeaders.get('host');
    if (authority !== null && authority !== '') return authorityHostname(authority);
    const addr = this.getHost() as IAddress & { host?: string };
    return addr.host ?? '';
  }

  /**
   * The session of this client (Twisted's `getSession`): the one named by
   * the `TORSION_SESSION` cookie (`TORSION_SECURE_SESSION` over TLS) if the
   * site still has it (it is touched), else a new one, whose cookie is
   * added to the response (`Path=/; HttpOnly; SameSite=Lax`, and `Secure`
   * over TLS). The same session for every call on this request.
   * @throws InvalidArgumentError when the channel has no site.
   */
  getSession(): Session {
    if (this.#session !== null) {
      this.#session.touch();
      return this.#session;
    }
    const site = this.channel.site;
    if (site === null) throw new InvalidArgumentError('getSession(): the channel has no site');
    const secure = this.isSecure();
    const cookieName = secure ? 'TORSION_SECURE_SESSION' : 'TORSION_SESSION';
    const uid = this.getCookie(cookieName);
    let session = uid === null ? null : site.getSession(uid);
    if (session !== null) {
      session.touch();
    } else {
      session = site.makeSession();
      this.addCookie(cookieName, session.uid, {
        path: '/',
        httpOnly: true,
        sameSite: 'Lax',
        secure,
      });
    }
    this.#session = session;
    return session;
  }

  // ------------------------------------------------------------------ response side

  /** The response's header fields (made on first use). */
  get responseHeaders(): Headers {
    this.#responseHeaders ??= new Headers();
    return this.#responseHeaders;
  }

  /** Trailer fields sent after a chunked response body (ignored for other framings). */
  get responseTrailers(): Headers {
    this.#trailers ??= new Headers();
    return this.#trailers;
  }

  /** The response status code (default 200). */
  get code(): number {
    return this.#code;
  }

  /** The reason phrase given to `setResponseCode`, or `undefined` (the registered one). */
  get codeMessage(): string | undefined {
    return this.#message;
  }

  /** `true` once `finish()` was called. */
  get finished(): boolean {
    return this.#finished;
  }

  /** `true` once the response head was sent (or, for HEAD, once `finish()` sent it). */
  get startedWriting(): boolean {
    return this.#startedWriting;
  }

  /** Body bytes given to `write` (sent, or counted for bodiless responses). */
  get sentLength(): number {
    return this.#sent;
  }

  /** `true` once the connection was lost before the response finished. */
  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Whether the connection may carry another request after this response:
   * decided when the head is written (`false` for `Connection: close` either
   * way, an HTTP/1.0 close-delimited body, an unread `100-continue` body, a
   * closing channel), and cleared if the response ends short of its length.
   */
  get persistent(): boolean {
    return this.#persistent;
  }

  /** Whether `100 Continue` was sent for this request. */
  get continueSent(): boolean {
    return this.#continueSent;
  }

  /**
   * Sets the status code and optionally the reason phrase. Ignored once the
   * head was sent.
   * @throws InvalidArgumentError for a code that is not an integer from 100 to 999.
   * @throws InvalidHeaderError for a reason phrase with CR, LF or control characters.
   */
  setResponseCode(code: number, message?: string): void {
    statusLineText(code, message); // validates
    if (this.#startedWriting) return;
    this.#code = code;
    this.#message = message;
  }

  /**
   * Sets a response header, replacing earlier values.
   * @throws InvalidHeaderError (a TorsionError) for a name that is not a
   *   token or a value with CR, LF, NUL or other control characters, and
   *   for a `Content-Length` that is not a decimal integer from 0 to
   *   2^53 - 1 (`'abc'`, `' 5'`, `'-1'`): nothing is set then.
   */
  setHeader(name: string, value: string): void {
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      checkResponseLength(value);
    }
    this.responseHeaders.set(name, value);
  }

  /**
   * Adds a `Set-Cookie` response header.
   * @throws InvalidArgumentError for an invalid name, value or attribute.
   */
  addCookie(name: string, value: string, options?: CookieOptions): void {
    this.responseHeaders.add('Set-Cookie', formatCookie(name, value, options));
  }

  /**
   * Sets the code (302 by default) and `Location: url`. The caller still
   * finishes the request.
   * @throws InvalidHeaderError for a URL that cannot be a header value.
   */
  redirect(url: string, code = 302): void {
    this.setResponseCode(code);
    this.setHeader('Location', url);
  }

  /**
   * Writes part of the response body (strings as UTF-8); the head goes out
   * with the first call (an empty write sends just the head). Bytes are
   * counted but not sent for HEAD requests and bodiless statuses.
   * @throws TransportClosedError after `finish()` (checked first).
   * @throws ContentLengthMismatch if the bytes would exceed the declared
   *   `Content-Length` (nothing is written).
   * @throws InvalidHeaderError with the head, for a malformed or conflicting
   *   `Content-Length` put in {@link responseHeaders} directly (nothing is
   *   written; the request is as before the call).
   * Does nothing after the connection was lost.
   */
  write(data: Uint8Array | string): void {
    if (this.#finished) throw new TransportClosedError('Request.write() after finish()');
    if (this.#lost) return;
    const n = byteLength(data);
    if (!this.#startedWriting) {
      if (this.method === 'HEAD') {
        // The head waits for finish(): it then knows the length a GET would have.
        this.#sent += n;
        this.#pullAgain();
        return;
      }
      this.#writeHead(-1, n === 0 ? null : data, n);
      return;
    }
    if (n === 0) return;
    this.#writeBody(data, n);
  }

  /**
   * Writes `body` as the whole response body (its length as
   * `Content-Length`, replacing one the resource set; for HEAD a non-empty
   * body only sets the length) and finishes: what the site does with bytes
   * returned by `render`. Head and body go out in one write when they fit.
   * Falls back to `write` + `finish` once the head was sent.
   * @throws TransportClosedError after `finish()`. Does nothing after the
   *   connection was lost.
   */
  respond(body: Uint8Array | string): void {
    if (this.#finished) throw new TransportClosedError('Request.respond() after finish()');
    if (this.#lost) return;
    if (this.#startedWriting) {
      this.write(body);
      this.finish();
      return;
    }
    const n = byteLength(body);
    const headers = this.#responseHeaders;
    if (this.method === 'HEAD') {
      if (n > 0) this.responseHeaders.set('Content-Length', String(n));
      this.#sent += n;
      this.finish();
      return;
    }
    if (headers !== null && !statusHasNoBody(this.#code)) headers.delete('content-length');
    this.#finished = true;
    try {
      this.#writeHead(n, n === 0 ? null : body, n);
    } catch (e) {
      if (!this.#startedWriting) this.#finished = false; // refused before anything was sent
      throw e;
    }
    this.#done();
  }

  /**
   * Ends the response: sends the head if not yet sent (with
   * `Content-Length: 0`, or for HEAD the counted length), the last chunk of
   * a chunked body, unregisters a producer still registered, hands the
   * request back to the channel (which dispatches the next pipelined
   * request or closes), then fires the `notifyFinish()` Deferreds. A body
   * shorter than its declared `Content-Length` is logged (`err`) and the
   * connection closes after it, so the client sees it cut short.
   * Does nothing after the connection was lost.
   * @throws AlreadyCalledError if called twice.
   * @throws InvalidHeaderError when the head is still to send and has a
   *   malformed or conflicting `Content-Length` (see {@link write}; the
   *   request is not finished then).
   */
  finish(): void {
    if (this.#lost) return;
    if (this.#finished) throw new AlreadyCalledError('Request.finish() called twice');
    this.#finished = true;
    if (!this.#startedWriting) {
      try {
        this.#writeHead(this.#sent, null, 0);
      } catch (e) {
        if (!this.#startedWriting) this.#finished = false; // refused before anything was sent
        throw e;
      }
    } else if (this.#framing === F_CHUNKED) {
      const trailers = this.#trailers;
      this.channel.output.write(trailers === null ? LAST_CHUNK : encodeLastChunk(trailers));
    }
    this.#done();
  }

  /**
   * Registers the producer of the response body. A push producer
   * (`streaming`) is paused while the client reads slowly (the channel
   * relays the transport's pause and resume); a pull producer gets
   * `resumeProducing()` each time the written bytes have drained. After
   * the connection's loss or `finish()` the producer is stopped at once.
   * It is unregistered at `finish()` if still registered, and stopped if the
   * connection is lost.
   * @throws ProducerAlreadyRegistered if one is registered.
   */
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    if (this.#producer !== null) throw new ProducerAlreadyRegistered();
    if (this.#lost || this.#finished) {
      try {
        producer.stopProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.stopProducing()');
      }
      return;
    }
    this.#producer = producer;
    this.#streaming = streaming;
    this.channel.requestProducerRegistered(this, producer, streaming);
  }

  /** Forgets the registered producer (it is not stopped). */
  unregisterProducer(): void {
    const producer = this.#producer;
    if (producer === null) return;
    this.#producer = null;
    this.channel.requestProducerUnregistered(this, producer, this.#streaming);
  }

  /** The registered producer, or `null`. */
  get producer(): IPushProducer | IPullProducer | null {
    return this.#producer;
  }

  /**
   * A Deferred that fires (with `undefined`) once the response is finished
   * and handed to the connection (or the request was {@link upgraded}), or
   * fails with `ConnectionLost` if the connection is lost first: a reset, a
   * failed write, an abort, or the client's FIN (unless the channel has
   * `allowHalfOpen`). Already fired if either has happened.
   */
  notifyFinish(): Deferred<void> {
    if (this.#finished && !this.#lost) return succeed(undefined);
    if (this.#lost)
      return fail(new ConnectionLost('the connection was lost before the response finished'));
    const d = new Deferred<void>();
    this.#waiters ??= [];
    this.#waiters.push(d);
    return d;
  }

  /**
   * Marks the request done after its connection was handed to another
   * protocol with `request.channel.detach()` (a WebSocket upgrade), which
   * answered on the socket itself: nothing is written here. Sets the status
   * code (101 by default; e.g. 400 when the other protocol refused after
   * the detach), marks the response finished, tells the site (one access
   * log line, no body bytes) and fires the `notifyFinish()` Deferreds.
   * Called once, by whoever detached the connection (`WebSocketResource`
   * does).
   * @throws InvalidArgumentError for a code that is not an integer from
   *   100 to 999, or when the channel has not been detached (it still owns
   *   the connection: finish the response instead).
   * @throws AlreadyCalledError if the request is already finished (or upgraded).
   */
  upgraded(code = 101): void {
    statusLineText(code); // validates
    if (this.#finished) {
      throw new AlreadyCalledError('Request.upgraded(): the request is already finished');
    }
    if (!this.channel.detached) {
      throw new InvalidArgumentError(
        'Request.upgraded(): the connection was not detached from its channel',
      );
    }
    this.#code = code;
    this.#message = undefined;
    this.#startedWriting = true;
    this.#finished = true;
    this.#producer = null; // the channel's output is gone with the detach
    const site = this.channel.site;
    if (site !== null) {
      try {
        site.requestFinished(this);
      } catch (e) {
        err(e, 'Unhandled error logging a request');
      }
    }
    const waiters = this.#waiters;
    this.#waiters = null;
    if (waiters !== null) for (const d of waiters) d.callback(undefined);
  }

  // ------------------------------------------------------------------ the channel's side

  /**
   * The connection is gone: later writes and `finish()` do nothing, an
   * incomplete body fails with `ConnectionLost`, the producer is stopped, the
   * `notifyFinish()` Deferreds fail. Called by the channel (once);
   * `producerStopped` when the transport already stopped the producer.
   */
  connectionLost(reason: Failure, producerStopped: boolean): void {
    const body = this.#body;
    const lost =
      reason.value instanceof ConnectionLost
        ? reason
        : new Failure(
            new ConnectionLost('the connection was closed before the request finished', {
              cause: reason.value,
            }),
          );
    if (body !== null && !body.complete) body.fail(lost);
    if (this.#finished) return;
    this.#lost = true;
    const producer = this.#producer;
    this.#producer = null;
    if (producer !== null && !producerStopped) {
      try {
        producer.stopProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.stopProducing()');
      }
    }
    const waiters = this.#waiters;
    this.#waiters = null;
    if (waiters !== null) for (const d of waiters) d.errback(lost);
  }

  /** Notes that `100 Continue` went out (called by the channel). */
  markContinueSent(): void {
    this.#continueSent = true;
  }

  /** The body object if one was made (the channel feeds it), else `null`. */
  get bodyIfAny(): RequestBody | null {
    return this.#body;
  }

  /** The connection must close after this response (the channel's call, e.g. on a parse error in the body). */
  forceClose(): void {
    this.#persistent = false;
  }

  // ------------------------------------------------------------------ internals

  /**
   * Builds and sends the head, with `data` (`n` bytes; `null` for none)
   * after it. `total` is the whole body's length when known (`respond`,
   * `finish`), else -1. The head is encoded straight into the channel's
   * output (latin1: every header character is below U+0100), with the body
   * when it is small.
   */
  #writeHead(total: number, data: Uint8Array | string | null, n: number): void {
    const channel = this.channel;
    let persistent = channel.mayKeepAlive(this);
    const body = this.#body;
    if (persistent && body !== null && !body.complete && !body.wanted) {
      if ((this.head.expectContinue || this.head.expectationFailed) && !this.#continueSent) {
        // The client may be holding the body back for our 100 (or for an
        // answer to its expectation): it will never come now.
        persistent = false;
      } else if (body.length !== null && body.length - body.received > channel.maxDiscardedBody) {
        // Nobody asked for the body and too much of it is left to drop: the
        // channel will close after this response, so say so.
        persistent = false;
      }
    }
    const plan = HEAD_PLAN;
    planHead(
      plan,
      channel.output,
      this.#code,
      this.#message,
      this.#responseHeaders,
      this.method === 'HEAD',
      this.clientproto === 'HTTP/1.1',
      total,
      persistent,
    ); // throws for a bad Content-Length, before anything changed
    this.#startedWriting = true;
    const framing = plan.framing;
    const declared = plan.declared;
    this.#framing = framing;
    this.#declared = declared;
    this.#persistent = plan.persistent;
    // A small body goes with the head, in the same piece of output.
    const inline =
      data !== null &&
      n <= INLINE_BODY &&
      (framing === F_CHUNKED || framing === F_CLOSE || (framing === F_LENGTH && n <= declared));
    const room = headLength(plan);
    const cursor = channel.output.cursor(inline ? room + chunkRoom(n) : room);
    const buf = cursor.buf as FastBuffer;
    let pos = encodeHead(buf, cursor.pos, plan);
    plan.fields = null; // no reference kept to the headers
    if (inline) {
      pos = putBody(buf, pos, data, n, framing === F_CHUNKED);
      this.#sent += n;
    }
    cursor.pos = pos;
    channel.output.written(cursor);
    if (!inline && data !== null) this.#writeBody(data, n);
  }

  /** Sends `n` body bytes after the head, framed; small ones are copied into the output, big ones not. */
  #writeBody(data: Uint8Array | string, n: number): void {
    const framing = this.#framing;
    if (framing === F_NONE) {
      this.#sent += n;
      this.#pullAgain();
      return;
    }
    if (framing === F_LENGTH && this.#sent + n > this.#declared) {
      throw new ContentLengthMismatch(
        `write() of ${n} bytes would exceed the declared Content-Length ${this.#declared} (${this.#sent} sent)`,
      );
    }
    this.#sent += n;
    const channel = this.channel;
    if (framing !== F_CHUNKED) {
      channel.output.write(data);
      return;
    }
    if (n > INLINE_BODY && typeof data !== 'string') {
      channel.output.pieces([`${n.toString(16)}\r\n`, data, CRLF]);
      return;
    }
    const cursor = channel.output.cursor(chunkRoom(n));
    cursor.pos = putBody(cursor.buf as FastBuffer, cursor.pos, data, n, true);
    channel.output.written(cursor);
  }

  /**
   * A pull producer whose bytes are not sent (HEAD, bodiless status) never
   * sees a drain: ask it for more on the next turn instead.
   */
  #pullAgain(): void {
    const producer = this.#producer;
    if (producer === null || this.#streaming) return;
    this.channel.reactor.callLater(0, Request.#resumePull, this, producer);
  }

  static #resumePull(request: Request, producer: IPushProducer | IPullProducer): void {
    if (request.#producer !== producer || request.#finished || request.#lost) return;
    try {
      producer.resumeProducing();
    } catch (e) {
      err(e, 'Unhandled error in producer.resumeProducing()');
    }
  }

  /** After the last bytes: producer, channel, then the `notifyFinish()` Deferreds. */
  #done(): void {
    if (this.#framing === F_LENGTH && this.#sent < this.#declared) {
      // The client waits for bytes that never come: closing tells it the
      // response was cut short; the log tells the resource's author.
      this.#persistent = false;
      err(
        new ContentLengthMismatch(
          `the response ended after ${this.#sent} of its ${this.#declared} declared bytes`,
        ),
        `Response to ${this.method} ${this.uri} cut short: the connection closes`,
      );
    }
    if (this.#producer !== null) this.unregisterProducer();
    this.channel.requestDone(this);
    const waiters = this.#waiters;
    this.#waiters = null;
    if (waiters !== null) for (const d of waiters) d.callback(undefined);
  }
}
