/**
 * {@link HTTPChannel}: the HTTP/1.1 server protocol of one connection
 * (Twisted's `http.HTTPChannel`): it feeds the bytes to a
 * {@link RequestParser}, makes a {@link Request} per request head, keeps the
 * pipeline in order, frames nothing itself (requests write their responses
 * through it) and owns everything about the connection: keep-alive, flow
 * control both ways, `100 Continue`, timeouts, closing.
 *
 * Decisions worth knowing (each is also stated where it is implemented):
 * - Pipelining: later requests are parsed but not dispatched until every
 *   earlier response has finished; only the request at the head of the
 *   pipeline is ever dispatched, so responses are in order with no
 *   buffering of later ones. At most `maxPipelinedRequests` (16) heads wait:
 *   past that, the parser and the socket pause. A queued request's body is
 *   buffered like any other (the same 64 KiB bound).
 * - Request bodies: at most `maxBufferedBody` (64 KiB, plus one socket read)
 *   is held per connection that no reader took; past it the parser and the
 *   socket pause until readers bring it under half.
 * - A response that finishes before its request body was read: a remainder
 *   of known length up to `maxDiscardedBody` (64 KiB) is read and dropped
 *   and the connection lives on; a larger remainder, or a chunked one that
 *   grows past the bound while being dropped, closes the connection after
 *   the response. If the request said `Expect: 100-continue` and the
 *   `100 Continue` was never sent, the response carries `Connection: close`
 *   and the connection closes after it (RFC 9110 §10.1.1 lets the client
 *   withhold the body).
 * - A parse error (or a header timeout, 408): nothing after it is ever
 *   parsed or dispatched. If it is in a head, the responses of the earlier
 *   requests finish first, then a short `text/plain` error response with
 *   `Connection: close` goes out and the connection closes. If it is in the
 *   body of the request being answered, that request's body fails with the
 *   error (the site answers it: a 400 through `HTTPException`), and the
 *   connection closes after its response (aborted if it does not finish
 *   within `closeTimeout`). If it is in the body of a request not yet
 *   dispatched, that request is dropped and the error answers in its place.
 * - The client's FIN (half-close): requests already received are answered,
 *   then the connection closes. A body left incomplete fails with
 *   `ConnectionLost`; if its request is the one in progress the connection
 *   closes at once (a full close looks the same until we write).
 * - Upgrade and CONNECT requests are dispatched once the parser has stopped
 *   after them, so {@link HTTPChannel.detach} hands over every byte that
 *   followed; if the response is an ordinary one, parsing goes on after it.
 * - Timeouts use one delayed call per connection, moved with `reset()`:
 *   `idleTimeout` (60 s) while waiting for a request with none in progress
 *   (closes silently), `headerTimeout` (30 s) from the first byte of a head
 *   while none is in progress (408 and close; a head arriving behind a
 *   request in progress is timed from when that request finishes),
 *   `bodyTimeout` (off by default) between body pieces while the channel
 *   reads a body, and `closeTimeout` (15 s) after the channel starts closing
 *   (then it aborts). While a request is being processed no timeout applies.
 * - Output flow control: the channel is the transport's producer for the
 *   whole connection; when the client stops reading, it pauses the current
 *   request's push producer and stops reading the client too (as Twisted).
 *   A pull producer is registered with the transport directly while it is
 *   registered.
 * - Writes made while the channel is handling a read (responses rendered
 *   synchronously, `100 Continue`) are gathered (up to 16 KiB) and written
 *   once at its end: pipelined responses leave in one write.
 *
 * @module
 */

import type { Socket } from 'node:net';
import { Protocol } from '../../protocols/protocol.js';
import {
  ConnectionLost,
  InvalidArgumentError,
  TransportClosedError,
} from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import type {
  IDelayedCall,
  IPullProducer,
  IPushProducer,
  IReactorTime,
  IStreamTransport,
} from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import { reactor as defaultReactor } from '../../reactor/reactor.js';
import type { Session } from '../site.js';
import { type BodyOwner, PUSH_DROPPED, PUSH_KEPT, RequestBody } from './body.js';
import { HTTPError, type HTTPParseError } from './errors.js';
import type { Headers } from './headers.js';
import {
  type ParserHandler,
  type ParserOptions,
  type RequestHead,
  RequestParser,
} from './parser.js';
import { Request } from './request.js';
import { reasonPhrase, statusLineText } from './status.js';

// ====================================================================== options

/**
 * What a channel needs from the site it serves (a {@link Site} implements
 * it): dispatching, the access log, sessions, and connection accounting.
 */
export interface ChannelSite {
  /**
   * Renders `request`, whose head is complete and which is at the head of
   * the pipeline. Must not throw (a throw is logged and the connection
   * aborted).
   */
  process(request: Request): void;
  /** `request`'s response finished (access log). */
  requestFinished(request: Request): void;
  /** The channel answered a protocol error with `status` (no request to log): access log. */
  errorSent(channel: HTTPChannel, status: number, bytes: number): void;
  /** The channel's connection closed (or was detached). Called once. */
  channelClosed(channel: HTTPChannel): void;
  /** The live session `uid`, or `null`. */
  getSession(uid: string): Session | null;
  /** A new session. */
  makeSession(): Session;
}

/** Options of an {@link HTTPChannel} (a {@link Site} takes the same ones). Times in seconds. */
export interface HTTPChannelOptions {
  /** Time and delayed calls (a `Clock` in tests). Default: the global reactor. */
  reactor?: IReactorTime;
  /**
   * From the first byte of a request head until it is complete (with no
   * request in progress); then 408 and close. Default 30; `null` disables.
   */
  headerTimeout?: number | null;
  /** Between requests (none in progress, nothing received); then close silently. Default 60; `null` disables. */
  idleTimeout?: number | null;
  /**
   * Between pieces of a request body while the channel reads it (not while
   * it is paused for a slow reader); then the body fails with a 408
   * `HTTPError` and the connection closes. Default `null` (off).
   */
  bodyTimeout?: number | null;
  /** After the channel starts closing, until it aborts the connection. Default 15. */
  closeTimeout?: number;
  /** The parser's limits (request line, header section and count, body size…). */
  limits?: ParserOptions;
  /** Requests parsed and waiting behind the one in progress before reading pauses. Default 16. */
  maxPipelinedRequests?: number;
  /** Request body bytes held per connection that no reader took before reading pauses. Default 64 KiB. */
  maxBufferedBody?: number;
  /** Unread request body bytes dropped after a response to keep the connection. Default 64 KiB. */
  maxDiscardedBody?: number;
  /** The default cap of `request.body()`, in bytes. Default 10 MiB. */
  maxBodySize?: number;
  /** The site that renders requests; without one every request gets a 404. */
  site?: ChannelSite | null;
}

const DEFAULT_MAX_BODY = 10 * 1024 * 1024;

function seconds(name: string, value: number | null | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === null) return Number.POSITIVE_INFINITY;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new InvalidArgumentError(
      `${name} must be a positive number of seconds or null, got ${String(value)}`,
    );
  }
  return value;
}

function count(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/**
 * The `Date` header value, refreshed at most once a second (on the
 * reactor's clock, at the wall clock's second boundaries), with the
 * `Date` and `Server` field lines ready to append to a head.
 */
export class ResponseDate {
  readonly #reactor: IReactorTime;
  #until = Number.NEGATIVE_INFINITY;
  #value = '';
  #fields = '';

  constructor(reactor: IReactorTime) {
    this.#reactor = reactor;
  }

  #refresh(): void {
    const now = this.#reactor.seconds();
    if (now < this.#until) return;
    const ms = Date.now();
    this.#value = new Date(ms).toUTCString();
    this.#fields = `Date: ${this.#value}\r\nServer: torsion\r\n`;
    this.#until = now + (1000 - (ms % 1000)) / 1000;
  }

  /** The IMF-fixdate of now (e.g. `Sun, 06 Nov 1994 08:49:37 GMT`). */
  value(): string {
    this.#refresh();
    return this.#value;
  }

  /** `"Date: …\r\nServer: torsion\r\n"`. */
  fields(): string {
    this.#refresh();
    return this.#fields;
  }
}

/**
 * {@link HTTPChannelOptions}, checked and filled in once: a site builds one
 * and hands it to every channel it makes (no per-connection work).
 */
export class ChannelConfig {
  readonly reactor: IReactorTime;
  readonly headerTimeout: number;
  readonly idleTimeout: number;
  readonly bodyTimeout: number;
  readonly closeTimeout: number;
  readonly limits: ParserOptions;
  readonly maxPipelinedRequests: number;
  readonly maxBufferedBody: number;
  readonly maxDiscardedBody: number;
  readonly maxBodySize: number;
  readonly site: ChannelSite | null;
  readonly date: ResponseDate;

  /** @throws InvalidArgumentError for a bad option (including the parser's limits). */
  constructor(options: HTTPChannelOptions = {}) {
    this.reactor = options.reactor ?? defaultReactor;
    this.headerTimeout = seconds('headerTimeout', options.headerTimeout, 30);
    this.idleTimeout = seconds('idleTimeout', options.idleTimeout, 60);
    this.bodyTimeout = seconds('bodyTimeout', options.bodyTimeout ?? null, 0);
    this.closeTimeout = seconds('closeTimeout', options.closeTimeout, 15);
    this.limits = { ...options.limits };
    new RequestParser(NULL_HANDLER, this.limits); // validates the limits now
    this.maxPipelinedRequests = count('maxPipelinedRequests', options.maxPipelinedRequests, 16, 1);
    this.maxBufferedBody = count('maxBufferedBody', options.maxBufferedBody, 64 * 1024, 1);
    this.maxDiscardedBody = count('maxDiscardedBody', options.maxDiscardedBody, 64 * 1024, 0);
    this.maxBodySize = count('maxBodySize', options.maxBodySize, DEFAULT_MAX_BODY, 1);
    this.site = options.site ?? null;
    this.date = new ResponseDate(this.reactor);
  }
}

const NULL_HANDLER: ParserHandler = {
  onRequest() {},
  onBody() {},
  onMessageComplete() {},
  onError() {},
};

// ====================================================================== constants

// Why reading is paused (bits of #readPause).
const P_BODY = 1; // too much request body held
const P_PIPELINE = 2; // too many requests waiting
const P_OUTPUT = 4; // the client does not read our responses
const P_UPGRADE = 8; // after an Upgrade/CONNECT request, until its response
const P_STOP = 16; // no more requests will be read (error, close, shutdown)

// What the one delayed call is for.
const T_NONE = 0;
const T_IDLE = 1;
const T_HEADERS = 2;
const T_BODY = 3;
const T_CLOSE = 4;
const T_ANSWER = 5; // the request in progress lost its body: it has closeTimeout to finish

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

/** Bytes of responses gathered while handling a read before they are written anyway. */
const BATCH_LIMIT = 16 * 1024;

/** Pieces up to this size are copied into one Buffer rather than written as a vector. */
const JOIN_LIMIT = 8 * 1024;

type LatinWritable = Buffer & { latin1Write(s: string, offset: number, length: number): number };

/**
 * The gathered pieces as one Buffer (strings as UTF-8, as `write` sends
 * them): the batch is small (a little over {@link BATCH_LIMIT}), and one
 * copy costs less than a `writev` of many pieces.
 */
function joinParts(parts: (Uint8Array | string)[]): Buffer {
  let total = 0;
  for (const p of parts) total += typeof p === 'string' ? Buffer.byteLength(p, 'utf8') : p.length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const p of parts) {
    if (typeof p === 'string') at += out.write(p, at, 'utf8');
    else {
      out.set(p, at);
      at += p.length;
    }
  }
  return out;
}

// ====================================================================== HTTPChannel

/**
 * The HTTP/1.1 server protocol (see the module documentation for the
 * decisions). Build it with a {@link ChannelConfig} (what a site does) or
 * plain {@link HTTPChannelOptions}.
 *
 * Callbacks from the parser ({@link onRequest}…), the request bodies
 * ({@link bodyWanted}, {@link bodyConsumed}), the transport's flow control
 * ({@link pauseProducing}…) and the requests ({@link writeResponse},
 * {@link requestDone}…) are public because other objects make them; users
 * call none of them.
 */
export class HTTPChannel extends Protocol implements ParserHandler, BodyOwner, IPushProducer {
  readonly #config: ChannelConfig;
  readonly #parser: RequestParser;

  /** Requests whose responses have not finished, in order; the first is the one dispatched. */
  #queue: Request[] = [];
  /** The request the parser is on (between its head and its end), or `null`. */
  #parsing: Request | null = null;
  /** Bytes the parser left when it paused; given to it again first. */
  #leftover: Buffer | null = null;
  #readPause = 0;
  #executing = false;

  // Writes gathered while handling a read.
  #batching = false;
  #outParts: (Uint8Array | string)[] | null = null;
  #outString = '';
  #outBytes = 0;
  /** An Upgrade/CONNECT request to dispatch once the parser has stopped. */
  #dispatchLater: Request | null = null;
  /** The Date fields read for the responses of the current read. */
  #feedDate: string | null = null;

  #timer: IDelayedCall | null = null;
  #timerKind = T_NONE;

  /** Request body bytes held (pushed, kept, not taken). */
  #bodyKept = 0;
  /** Bytes dropped from the body being discarded. */
  #dropped = 0;

  #closing = false;
  #lost = false;
  /** No response may keep the connection (shutdown, a broken body being answered). */
  #wontReuse = false;
  /** Close once the pipeline is empty (the peer half-closed). */
  #closeWhenIdle = false;
  #peerEOF = false;
  #pendingError: HTTPError | null = null;

  /** The transport paused us (the client does not read). */
  #outputPaused = false;
  /** We are the transport's registered producer. */
  #registered = false;
  #requestProducer: IPushProducer | IPullProducer | null = null;
  #requestStreaming = false;

  /** Whether the connection is TLS (read from the transport when the connection is made). */
  secure = false;

  /**
   * @param options - a {@link ChannelConfig}, or options to make one from.
   * @throws InvalidArgumentError for bad options.
   */
  constructor(options: ChannelConfig | HTTPChannelOptions = {}) {
    super();
    const config = options instanceof ChannelConfig ? options : new ChannelConfig(options);
    this.#config = config;
    this.#parser = new RequestParser(this, config.limits);
  }

  /** The site this channel serves, or `null`. */
  get site(): ChannelSite | null {
    return this.#config.site;
  }

  /** The reactor (time source) this channel uses. */
  get reactor(): IReactorTime {
    return this.#config.reactor;
  }

  /** The default cap of `request.body()`. */
  get maxBodySize(): number {
    return this.#config.maxBodySize;
  }

  /** Unread request body bytes dropped after a response to keep the connection. */
  get maxDiscardedBody(): number {
    return this.#config.maxDiscardedBody;
  }

  /** The requests whose responses have not finished, in order (a copy). */
  get requests(): Request[] {
    return this.#queue.slice();
  }

  /** Whether no request is in progress or being received (what a graceful shutdown closes at once). */
  get idle(): boolean {
    return this.#queue.length === 0 && this.#parsing === null;
  }

  // ------------------------------------------------------------------ Protocol

  /** Sets up flow control (the channel produces for the transport), `TCP_NODELAY`, the idle timeout. */
  override connectionMade(): void {
    const t = this.transport as IStreamTransport & {
      setTcpNoDelay?: (on: boolean) => void;
      isSecure?: () => boolean;
      secure?: boolean;
    };
    this.secure = typeof t.isSecure === 'function' ? t.isSecure() : t.secure === true;
    if (typeof t.setTcpNoDelay === 'function') t.setTcpNoDelay(true);
    this.#registered = true;
    this.transport.registerProducer(this, true);
    this.#updateTimer();
  }

  /** Bytes from the client: parsed now, or kept in order while reading is paused. */
  override dataReceived(data: Buffer): void {
    if (this.#closing || this.#lost || this.#parser.finished) return;
    const left = this.#leftover;
    if (left !== null || this.#readPause !== 0) {
      // A transport may deliver while paused (in-memory ones do): keep order.
      this.#leftover = left === null ? data : Buffer.concat([left, data]);
      if (this.#readPause !== 0) return;
      data = this.#leftover;
      this.#leftover = null;
    }
    this.#feed(data);
  }

  /**
   * The client half-closed (sent FIN): requests already received are still
   * answered, then the connection closes. A request head it left incomplete
   * is dropped; a request body it left incomplete fails with
   * `ConnectionLost`, and if that request is the one in progress the
   * connection closes at once (its response could only be for a client that
   * gave up).
   */
  readConnectionLost(): void {
    this.#peerEOF = true;
    this.#eofCheck();
  }

  /** Our FIN went out: nothing to do (the connection closes when the peer's arrives). */
  writeConnectionLost(): void {}

  /**
   * The connection is gone: the timer is cancelled, every request left gets
   * `connectionLost` (pending `notifyFinish()` fail, producers stop, bodies
   * fail with `ConnectionLost`), and the site is told.
   */
  override connectionLost(reason: Failure): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#cancelTimer();
    this.#leftover = null;
    this.#outParts = null;
    this.#outString = '';
    const queue = this.#queue;
    this.#queue = [];
    const parsing = this.#parsing;
    this.#parsing = null;
    // A pull producer was registered with the transport, which stopped it already.
    const stopped = this.#requestProducer !== null && !this.#requestStreaming;
    this.#requestProducer = null;
    for (const request of queue) request.connectionLost(reason, stopped);
    if (parsing !== null && !queue.includes(parsing)) parsing.connectionLost(reason, false);
    this.#config.site?.channelClosed(this);
  }

  // ------------------------------------------------------------------ ParserHandler

  /** @internal The parser read a request head. */
  onRequest(head: RequestHead): void {
    if (this.#wontReuse || this.#closing) {
      // Arrived after a shutdown began: never dispatched (the client retries elsewhere).
      this.#parsing = null;
      this.#pause(P_STOP);
      return;
    }
    const hasBody = head.chunked || (head.contentLength !== null && head.contentLength > 0);
    const request = new Request(
      this,
      head,
      hasBody ? new RequestBody(this, head.contentLength, false) : null,
    );
    this.#parsing = request;
    this.#dropped = 0;
    const queue = this.#queue;
    queue.push(request);
    if (queue.length === 1) {
      // An Upgrade or CONNECT waits for the parser to stop after it, so that
      // a detach() knows every byte that follows its head.
      if (head.upgrade || head.method === 'CONNECT') this.#dispatchLater = request;
      else this.#dispatch(request);
    } else if (queue.length > this.#config.maxPipelinedRequests) {
      this.#pause(P_PIPELINE);
    }
    if (
      hasBody &&
      this.#parsing === request &&
      this.#config.bodyTimeout !== Number.POSITIVE_INFINITY
    ) {
      this.#arm(T_BODY, this.#config.bodyTimeout);
    }
  }

  /** @internal A piece of the current request's body. */
  onBody(chunk: Buffer): void {
    const request = this.#parsing;
    const body = request?.bodyIfAny ?? null;
    if (body === null) return;
    const outcome = body.push(chunk);
    if (outcome === PUSH_KEPT) {
      this.#bodyKept += chunk.length;
      if (this.#bodyKept > this.#config.maxBufferedBody) this.#pause(P_BODY);
    } else if (outcome === PUSH_DROPPED) {
      this.#dropped += chunk.length;
      if (this.#dropped > this.#config.maxDiscardedBody && !this.#queue.includes(request!)) {
        this.#closeConnection();
        return;
      }
    }
    if (this.#timerKind === T_BODY) this.#timer!.reset(this.#config.bodyTimeout);
  }

  /** @internal The current request is complete. */
  onMessageComplete(trailers: Headers | null): void {
    const request = this.#parsing;
    this.#parsing = null;
    if (request === null) return;
    request.bodyIfAny?.end(trailers);
    if (this.#timerKind === T_BODY) this.#timerKind = T_NONE;
    const head = request.head;
    if (head.upgrade || head.method === 'CONNECT') {
      // The parser paused itself: what follows may not be HTTP. Decided
      // when the response finishes (a detach takes the bytes; otherwise
      // parsing goes on).
      if (this.#queue.includes(request)) this.#pause(P_UPGRADE);
      else this.#parser.resume();
    }
    // Nothing more will be read: `Connection: close`, a shutdown.
    if (this.#wontReuse || this.#parser.finished) this.#pause(P_STOP);
  }

  /** @internal The bytes broke a rule: answer `error.status` and close. */
  onError(error: HTTPParseError): void {
    this.#protocolError(error);
  }

  // ------------------------------------------------------------------ BodyOwner

  /** @internal A reader asked for a body for the first time: `100 Continue` if it is due. */
  bodyWanted(body: RequestBody): void {
    const request = this.#queue[0];
    if (request === undefined || request.bodyIfAny !== body || this.#closing) return;
    if (
      request.head.expectContinue &&
      !request.continueSent &&
      !request.startedWriting &&
      body.received === 0 &&
      !body.complete
    ) {
      request.markContinueSent();
      this.writeResponse(CONTINUE);
    }
  }

  /** @internal `bytes` of held body left a body: resume reading below half the bound. */
  bodyConsumed(_body: RequestBody, bytes: number): void {
    this.#bodyKept -= bytes;
    if ((this.#readPause & P_BODY) !== 0 && this.#bodyKept <= this.#config.maxBufferedBody >>> 1) {
      this.#unpause(P_BODY);
    }
  }

  // ------------------------------------------------------------------ IPushProducer (for the transport)

  /** @internal The client is not reading: pause the response's producer and stop reading the client. */
  pauseProducing(): void {
    if (this.#outputPaused) return;
    this.#outputPaused = true;
    this.#pause(P_OUTPUT);
    const producer = this.#requestProducer;
    if (producer !== null && this.#requestStreaming) {
      try {
        (producer as IPushProducer).pauseProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.pauseProducing()');
      }
    }
  }

  /** @internal The client reads again: resume the response's producer and reading. */
  resumeProducing(): void {
    if (!this.#outputPaused) return;
    this.#outputPaused = false;
    const producer = this.#requestProducer;
    if (producer !== null && this.#requestStreaming) {
      try {
        (producer as IPushProducer).resumeProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.resumeProducing()');
      }
    }
    // The producer's writes may have filled the buffer (and paused us) again.
    if (!this.#outputPaused) this.#unpause(P_OUTPUT);
  }

  /**
   * @internal The transport let go of us (it is closing or detached). The
   * request's producer is stopped by the request's `connectionLost`, which
   * follows.
   */
  stopProducing(): void {
    this.#registered = false;
  }

  // ------------------------------------------------------------------ the requests' side

  /** @internal Whether `request`'s response may leave the connection open. */
  mayKeepAlive(request: Request): boolean {
    return request.head.keepAlive && !this.#wontReuse && !this.#closing;
  }

  /**
   * @internal `"Date: …\r\nServer: torsion\r\n"`, cached per second; while
   * a read is handled, read once for all the responses it produces
   * (pipelined ones), sparing a clock read per response.
   */
  dateServerFields(): string {
    if (!this.#batching) return this.#config.date.fields();
    this.#feedDate ??= this.#config.date.fields();
    return this.#feedDate;
  }

  /** @internal The current `Date` value. */
  dateValue(): string {
    return this.#config.date.value();
  }

  /**
   * @internal Writes response bytes (strings must be ASCII or meant as
   * UTF-8): gathered while a read is handled, else written at once. Dropped
   * once the connection is closing or gone.
   */
  writeResponse(data: Uint8Array | string): void {
    if (this.#lost || this.#closing) return;
    if (this.#batching) {
      if (typeof data === 'string') {
        this.#outString += data;
      } else {
        this.#outParts ??= [];
        const parts = this.#outParts;
        if (this.#outString !== '') {
          parts.push(this.#outString);
          this.#outString = '';
        }
        parts.push(data);
      }
      // Small responses are gathered; big ones go out now, so the transport
      // sees them (and pauses a producer) as they are written.
      this.#outBytes += data.length;
      if (this.#outBytes >= BATCH_LIMIT) this.#flush();
      return;
    }
    try {
      this.transport.write(data);
    } catch (e) {
      if (!(e instanceof TransportClosedError)) throw e;
    }
  }

  /**
   * @internal Writes `a` (ASCII), `b` and (if not null) `c` in order. Small
   * ones are joined into one Buffer: one `write` costs less than a `writev`
   * of pieces (this is the head and body of most responses).
   */
  writeResponseParts(a: string, b: Uint8Array, c: Uint8Array | null): void {
    if (this.#lost || this.#closing) return;
    const la = a.length;
    const lc = c === null ? 0 : c.length;
    const total = la + b.length + lc;
    if (total <= JOIN_LIMIT) {
      const joined = Buffer.allocUnsafe(total) as LatinWritable;
      joined.latin1Write(a, 0, la);
      joined.set(b, la);
      if (c !== null) joined.set(c, la + b.length);
      this.writeResponse(joined);
      return;
    }
    if (this.#batching) {
      this.writeResponse(a);
      this.writeResponse(b);
      if (c !== null) this.writeResponse(c);
      return;
    }
    try {
      this.transport.writeSequence(c === null ? [a, b] : [a, b, c]);
    } catch (e) {
      if (!(e instanceof TransportClosedError)) throw e;
    }
  }

  /** @internal `request` registered a producer (it is the request in progress). */
  requestProducerRegistered(
    request: Request,
    producer: IPushProducer | IPullProducer,
    streaming: boolean,
  ): void {
    if (request !== this.#queue[0]) {
      throw new InvalidArgumentError('registerProducer(): the request is not in progress');
    }
    this.#requestProducer = producer;
    this.#requestStreaming = streaming;
    if (this.#lost || this.#closing) return;
    if (streaming) {
      if (this.#outputPaused) (producer as IPushProducer).pauseProducing();
      return;
    }
    // A pull producer is driven by the transport itself (more on each drain).
    this.#flush();
    if (this.#registered) {
      this.#registered = false;
      this.transport.unregisterProducer();
    }
    this.transport.registerProducer(producer, false);
  }

  /** @internal `request` unregistered its producer. */
  requestProducerUnregistered(
    _request: Request,
    producer: IPushProducer | IPullProducer,
    streaming: boolean,
  ): void {
    if (this.#requestProducer !== producer) return;
    this.#requestProducer = null;
    if (streaming || this.#lost || this.#closing) return;
    this.#flush();
    this.transport.unregisterProducer();
    this.#registerSelf();
  }

  /**
   * @internal `request`'s response finished: log it, then close, drop the
   * rest of its body, dispatch the next request, or wait for one.
   */
  requestDone(request: Request): void {
    const queue = this.#queue;
    if (queue[0] !== request) return; // lost meanwhile
    queue.shift();
    const site = this.#config.site;
    if (site !== null) {
      try {
        site.requestFinished(request);
      } catch (e) {
        err(e, 'Unhandled error logging a request');
      }
    }
    if (this.#lost) return;
    const body = request.bodyIfAny;
    const unread = body !== null && !body.complete && body.failure === null;
    if (
      !request.persistent ||
      this.#wontReuse ||
      this.#closing ||
      (unread &&
        body.length !== null &&
        body.length - body.received > this.#config.maxDiscardedBody)
    ) {
      this.#closeConnection();
      return;
    }
    if ((request.head.upgrade || request.head.method === 'CONNECT') && !unread) {
      // Declined (the connection was not taken over): go on as HTTP.
      this.#unpause(P_UPGRADE);
    }
    if (queue.length > 0) {
      this.#dispatch(queue[0]!);
      if (!this.#lost && this.#queue.length <= this.#config.maxPipelinedRequests) {
        this.#unpause(P_PIPELINE);
      }
      return;
    }
    if (unread) {
      this.#dropped = 0;
      body.discard(); // may resume reading, and so complete the body (and more)
      if (this.#lost || this.#closing) return;
    }
    this.#afterPipelineEmpty();
  }

  // ------------------------------------------------------------------ control

  /**
   * Graceful shutdown of this connection: if no request is in progress or
   * being received it closes now; otherwise no further request is read, the
   * response in progress gets `Connection: close` (if its head is not sent
   * yet) and the connection closes after it (requests queued behind it are
   * dropped unanswered, as a client expects after `Connection: close`).
   */
  shutdown(): void {
    if (this.#closing || this.#lost) return;
    this.#wontReuse = true;
    if (this.idle) {
      this.#closeConnection();
      return;
    }
    if (this.#parsing === null) this.#pause(P_STOP);
  }

  /** Drops the connection at once (unsent bytes are lost). */
  abortConnection(): void {
    if (this.#lost) return;
    this.#closing = true;
    this.#cancelTimer();
    this.transport.abortConnection();
  }

  /**
   * Takes the socket away for another protocol (a WebSocket upgrade): the
   * transport's `detach()`, with `head` holding the bytes received after the
   * request head that were not parsed. The channel then forgets the
   * connection: no `connectionLost`, its requests are left as they are, the
   * site is told the channel closed.
   * @throws TransportClosedError when the transport cannot be detached.
   */
  detach(): { socket: Socket; head: Buffer } {
    this.#flush();
    if (this.#registered) {
      this.#registered = false;
      this.transport.unregisterProducer();
    }
    const { socket, head } = this.transport.detach();
    const left = this.#leftover;
    this.#leftover = null;
    this.#lost = true;
    this.#closing = true;
    this.#cancelTimer();
    this.#queue = [];
    this.#parsing = null;
    this.#config.site?.channelClosed(this);
    const rest = left === null ? head : head.length === 0 ? left : Buffer.concat([left, head]);
    return { socket, head: rest };
  }

  // ------------------------------------------------------------------ internals

  /** Parses `data` with writes gathered; keeps what the parser leaves when it pauses. */
  #feed(data: Buffer): void {
    const outer = this.#batching;
    this.#batching = true;
    this.#executing = true;
    let consumed: number;
    try {
      consumed = this.#parser.execute(data);
    } finally {
      this.#executing = false;
      if (!outer) this.#batching = false;
    }
    if (consumed < data.length && !this.#parser.finished && !this.#closing && !this.#lost) {
      this.#leftover = consumed === 0 ? data : data.subarray(consumed);
    }
    const later = this.#dispatchLater;
    if (later !== null) {
      this.#dispatchLater = null;
      if (this.#queue[0] === later && !this.#lost) this.#dispatch(later);
    }
    if (this.#peerEOF) this.#eofCheck();
    if (!this.#lost && !this.#closing) this.#updateTimer();
    if (!outer) {
      this.#feedDate = null;
      this.#flush();
    }
  }

  /** Writes what was gathered: one write, or one `writeSequence` (a single `writev`). */
  #flush(): void {
    const parts = this.#outParts;
    const s = this.#outString;
    const bytes = this.#outBytes;
    this.#outString = '';
    this.#outBytes = 0;
    if (parts === null || parts.length === 0) {
      if (s === '' || this.#lost || this.#closing) return;
      try {
        this.transport.write(s);
      } catch (e) {
        if (!(e instanceof TransportClosedError)) throw e;
      }
      return;
    }
    if (s !== '') parts.push(s);
    try {
      if (this.#lost || this.#closing) return;
      if (parts.length === 1) this.transport.write(parts[0]!);
      else if (bytes <= BATCH_LIMIT) this.transport.write(joinParts(parts));
      else this.transport.writeSequence(parts);
    } catch (e) {
      if (!(e instanceof TransportClosedError)) throw e;
    } finally {
      parts.length = 0;
    }
  }

  #dispatch(request: Request): void {
    this.#timerKind = T_NONE;
    const site = this.#config.site;
    try {
      if (site !== null) site.process(request);
      else notFound(request);
    } catch (e) {
      err(e, 'Unhandled error dispatching a request');
      this.abortConnection();
    }
  }

  #pause(bit: number): void {
    const was = this.#readPause;
    this.#readPause = was | bit;
    if (was !== 0) return;
    this.#parser.pause();
    if (!this.#lost && !this.#closing) this.transport.pauseProducing();
    if (this.#timerKind === T_BODY) this.#timerKind = T_NONE;
  }

  #unpause(bit: number): void {
    if ((this.#readPause & bit) === 0) return;
    this.#readPause &= ~bit;
    if (this.#readPause !== 0 || this.#lost || this.#closing) return;
    this.#parser.resume();
    if (this.#executing) return; // the running execute goes on by itself
    const left = this.#leftover;
    if (left !== null) {
      this.#leftover = null;
      this.#feed(left);
      if (this.#readPause !== 0 || this.#lost || this.#closing) return;
    }
    this.transport.resumeProducing();
    if (
      (this.#parsing?.bodyIfAny ?? null) !== null &&
      this.#config.bodyTimeout !== Number.POSITIVE_INFINITY &&
      this.#timerKind === T_NONE
    ) {
      this.#arm(T_BODY, this.#config.bodyTimeout);
    }
  }

  /** Registers the channel as the transport's producer again (after a pull producer). */
  #registerSelf(): void {
    this.#outputPaused = false;
    this.#registered = true;
    this.transport.registerProducer(this, true); // may pause us at once
    if (!this.#outputPaused) this.#unpause(P_OUTPUT);
  }

  /** The pipeline became empty: a pending error, a close, or the wait for the next request. */
  #afterPipelineEmpty(): void {
    if (this.#pendingError !== null) {
      this.#sendError();
      return;
    }
    if (this.#closeWhenIdle && this.#parsing === null) {
      this.#closeConnection();
      return;
    }
    this.#updateTimer();
  }

  /** Whatever went wrong with the bytes (a parse error, a timeout): see the module documentation. */
  #protocolError(error: HTTPError): void {
    if (this.#pendingError !== null || this.#closing || this.#lost) return;
    this.#pause(P_STOP);
    this.#leftover = null;
    const request = this.#parsing;
    this.#parsing = null;
    const queue = this.#queue;
    if (request !== null) {
      request.bodyIfAny?.fail(new Failure(error));
      const i = queue.indexOf(request);
      if (i === 0) {
        // Being answered: it answers the error itself (nothing follows it),
        // within closeTimeout.
        request.forceClose();
        this.#wontReuse = true;
        this.#arm(T_ANSWER, this.#config.closeTimeout);
        return;
      }
      if (i === -1) {
        // Already answered (its unread rest was being dropped): just close.
        this.#closeConnection();
        return;
      }
      queue.splice(i, 1); // never dispatched: the error answers in its place
      request.connectionLost(new Failure(error), false);
    }
    this.#pendingError = error;
    if (queue.length === 0) this.#sendError();
  }

  /** Writes the pending error's minimal response and closes. */
  #sendError(): void {
    const error = this.#pendingError!;
    const status = error.status;
    const reason = reasonPhrase(status);
    const text = `${status} ${reason}: ${error.message}\n`;
    const length = Buffer.byteLength(text);
    this.writeResponse(
      `${statusLineText(status)}${this.dateServerFields()}Content-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${length}\r\nConnection: close\r\n\r\n${text}`,
    );
    try {
      this.#config.site?.errorSent(this, status, length);
    } catch (e) {
      err(e, 'Unhandled error logging an error response');
    }
    this.#closeConnection();
  }

  /** The peer half-closed: see {@link readConnectionLost}. */
  #eofCheck(): void {
    if (this.#leftover !== null || this.#closing || this.#lost) return;
    const request = this.#parsing;
    if (request !== null) {
      this.#parsing = null;
      const lost = new Failure(
        new ConnectionLost('the client closed the connection before the request body was complete'),
      );
      request.bodyIfAny?.fail(lost);
      const i = this.#queue.indexOf(request);
      if (i === 0) {
        // The request in progress can never be complete: the client gave up
        // on it (a full close looks the same until we write).
        this.#closeConnection();
        return;
      }
      if (i > 0) {
        this.#queue.splice(i, 1);
        request.connectionLost(lost, false);
      }
    }
    this.#pause(P_STOP);
    if (this.#queue.length === 0) this.#closeConnection();
    else this.#closeWhenIdle = true;
  }

  /** Closes cleanly: flush, give up the transport's producer slot, FIN, and a deadline to abort. */
  #closeConnection(): void {
    if (this.#closing || this.#lost) return;
    this.#flush();
    this.#closing = true;
    this.#leftover = null;
    this.#readPause |= P_STOP;
    const transport = this.transport;
    if (this.#registered) {
      this.#registered = false;
      transport.unregisterProducer();
    } else if (this.#requestProducer !== null && !this.#requestStreaming) {
      transport.unregisterProducer();
    }
    transport.loseConnection();
    if (!this.#lost) this.#arm(T_CLOSE, this.#config.closeTimeout);
  }

  #updateTimer(): void {
    if (this.#closing || this.#lost || this.#timerKind === T_ANSWER) return;
    const config = this.#config;
    if (this.#queue.length > 0 || this.#parsing !== null) {
      if (this.#timerKind !== T_BODY) this.#timerKind = T_NONE;
      return;
    }
    if (this.#parser.idle && this.#leftover === null) {
      if (this.#timerKind !== T_IDLE) this.#arm(T_IDLE, config.idleTimeout);
    } else if (this.#timerKind !== T_HEADERS) {
      this.#arm(T_HEADERS, config.headerTimeout);
    }
  }

  /** Points the one delayed call at `kind`, `after` seconds from now (never for an infinite time). */
  #arm(kind: number, after: number): void {
    if (after === Number.POSITIVE_INFINITY) {
      this.#timerKind = T_NONE;
      return;
    }
    this.#timerKind = kind;
    const timer = this.#timer;
    if (timer?.active()) timer.reset(after);
    else this.#timer = this.#config.reactor.callLater(after, HTTPChannel.#timedOut, this);
  }

  #cancelTimer(): void {
    const timer = this.#timer;
    this.#timer = null;
    this.#timerKind = T_NONE;
    if (timer?.active()) timer.cancel();
  }

  static #timedOut(channel: HTTPChannel): void {
    const kind = channel.#timerKind;
    channel.#timerKind = T_NONE;
    if (channel.#lost) return;
    switch (kind) {
      case T_IDLE:
        if (channel.idle && channel.#parser.idle) channel.#closeConnection();
        break;
      case T_HEADERS:
        if (channel.idle) {
          channel.#protocolError(
            new HTTPError(
              408,
              'request head not complete in time',
              'TORSION_ERR_HTTP_HEADER_TIMEOUT',
            ),
          );
        }
        break;
      case T_BODY:
        channel.#protocolError(
          new HTTPError(408, 'request body not received in time', 'TORSION_ERR_HTTP_BODY_TIMEOUT'),
        );
        break;
      case T_CLOSE:
      case T_ANSWER:
        channel.abortConnection();
        break;
    }
  }
}

/** What a channel without a site answers. */
function notFound(request: Request): void {
  request.setResponseCode(404);
  request.setHeader('Content-Type', 'text/plain; charset=utf-8');
  request.respond('404 Not Found\n');
}
