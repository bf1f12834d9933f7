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
 * - An HTTP/1.1 `Expect` with a member other than `100-continue` is
 *   answered 417 in the request's turn, without dispatching it; the
 *   connection closes after it unless the request had no body or its whole
 *   body had already arrived (the client may withhold it, as above).
 * - A parse error (or a header timeout, 408): nothing after it is ever
 *   parsed or dispatched. If it is in a head, the responses of the earlier
 *   requests finish first, then a short `text/plain` error response with
 *   `Connection: close` goes out and the connection closes. If it is in the
 *   body of the request being answered, that request's body fails with the
 *   error (the site answers it: a 400 through `HTTPException`), and the
 *   connection closes after its response (aborted if it does not finish
 *   within `closeTimeout`). If it is in the body of a request not yet
 *   dispatched, that request is dropped and the error answers in its place.
 * - The client's FIN means the client has gone away (as Twisted's
 *   channel, which is not half-closeable, and Node's HTTP server by
 *   default): responses already finished are flushed, then the connection
 *   closes; every request whose response has not finished (the one in
 *   progress, those waiting behind it) gets `connectionLost` with
 *   `ConnectionLost` at once, so a resource waiting without writing (a long
 *   poll, an app between two puts) learns it now, not at its next write.
 *   Bytes not parsed yet are dropped. With the `allowHalfOpen` option the
 *   FIN is a half-close instead: requests already received are answered,
 *   then the connection closes; a body left incomplete fails with
 *   `ConnectionLost`, and if its request is the one in progress the
 *   connection closes at once (a full close looks the same until we write).
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
 *   registered (`output.ts`, {@link ChannelOutput}).
 * - Writes made while the channel is handling a read (responses rendered
 *   synchronously, `100 Continue`) are gathered (up to 16 KiB, in one
 *   buffer shared by the process) and written once at its end: pipelined
 *   responses leave in one write.
 *
 * @module
 */

import type { Socket } from 'node:net';
import { Protocol } from '../../protocols/protocol.js';
import { ConnectionLost, InvalidArgumentError } from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import type {
  IPullProducer,
  IPushProducer,
  IReactorTime,
  IStreamTransport,
  ITLSTransport,
} from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import { type BodyOwner, PUSH_DROPPED, PUSH_KEPT, RequestBody } from './body.js';
import { CONTINUE, errorResponse, expectationFailed, notFound } from './channel-answers.js';
import { ChannelConfig, type ChannelSite, type HTTPChannelOptions } from './channel-config.js';
import {
  ChannelTimer,
  T_ANSWER,
  T_BODY,
  T_CLOSE,
  T_HEADERS,
  T_IDLE,
  T_NONE,
  type TimerOwner,
} from './channel-timer.js';
import { HTTPError, type HTTPParseError } from './errors.js';
import type { Headers } from './headers.js';
import { ChannelOutput } from './output.js';
import { type ParserHandler, type RequestHead, RequestParser } from './parser.js';
import { Request } from './request.js';

// Kept importable from here, where they were first defined.
export {
  ChannelConfig,
  type ChannelSite,
  type HTTPChannelOptions,
} from './channel-config.js';
export { ResponseDate } from './response-date.js';

// ====================================================================== constants

// Why reading is paused (bits of #readPause).
const P_BODY = 1; // too much request body held
const P_PIPELINE = 2; // too many requests waiting
const P_OUTPUT = 4; // the client does not read our responses
const P_UPGRADE = 8; // after an Upgrade/CONNECT request, until its response
const P_STOP = 16; // no more requests will be read (error, close, shutdown)

// ====================================================================== HTTPChannel

/**
 * The HTTP/1.1 server protocol (see the module documentation for the
 * decisions). Build it with a {@link ChannelConfig} (what a site does) or
 * plain {@link HTTPChannelOptions}.
 *
 * Callbacks from the parser ({@link onRequest}…), the request bodies
 * ({@link bodyWanted}, {@link bodyConsumed}), the transport's flow control
 * ({@link pauseProducing}…), the timer ({@link timedOut}) and the requests
 * ({@link requestDone}, {@link output}…) are public because other objects
 * make them; users call none of them.
 */
export class HTTPChannel
  extends Protocol
  implements ParserHandler, BodyOwner, IPushProducer, TimerOwner
{
  readonly #config: ChannelConfig;
  readonly #parser: RequestParser;
  /**
   * @internal Where the requests write their responses: gathered while a
   * read is handled, in order, dropped once the connection is closing.
   */
  readonly output: ChannelOutput;

  /** Requests whose responses have not finished, in order; the first is the one dispatched. */
  #queue: Request[] = [];
  /** The request the parser is on (between its head and its end), or `null`. */
  #parsing: Request | null = null;
  /** Bytes the parser left when it paused; given to it again first. */
  #leftover: Buffer | null = null;
  #readPause = 0;
  #executing = false;

  /** An Upgrade/CONNECT request to dispatch once the parser has stopped. */
  #dispatchLater: Request | null = null;

  /** The one delayed call (idle, header, body, close timeouts). */
  readonly #timer: ChannelTimer;

  /** Request body bytes held (pushed, kept, not taken). */
  #bodyKept = 0;
  /** Bytes dropped from the body being discarded. */
  #dropped = 0;

  #closing = false;
  #lost = false;
  /** No response may keep the connection (shutdown, a broken body being answered). */
  #wontReuse = false;
  /** Close once the pipeline is empty (the peer half-closed, with `allowHalfOpen`). */
  #closeWhenIdle = false;
  /** The client sent FIN. */
  #peerEOF = false;
  #pendingError: HTTPError | null = null;

  /** {@link detach} took the connection. */
  #detached = false;

  /** An explicit answer for {@link secure}, or `null` to ask the transport. */
  #secure: boolean | null = null;

  /**
   * @param options - a {@link ChannelConfig}, or options to make one from.
   * @throws InvalidArgumentError for bad options.
   */
  constructor(options: ChannelConfig | HTTPChannelOptions = {}) {
    super();
    const config = options instanceof ChannelConfig ? options : new ChannelConfig(options);
    this.#config = config;
    this.#parser = new RequestParser(this, config.limits);
    this.output = new ChannelOutput(config.date);
    this.#timer = new ChannelTimer(config.reactor, this);
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

  /**
   * Whether the connection is TLS, asked of the transport on each read (its
   * `secure`, {@link ITLSTransport.secure}; `false` for a transport without
   * one, or before the connection is made), so a `startTLS()` completed
   * later counts. Assigning a value overrides the transport's answer (for a
   * transport that cannot tell, e.g. behind a TLS-terminating wrapper).
   */
  get secure(): boolean {
    if (this.#secure !== null) return this.#secure;
    const t: IStreamTransport | Partial<Pick<ITLSTransport, 'secure'>> | undefined = this.transport;
    return t !== undefined && t !== null && 'secure' in t && t.secure === true;
  }

  set secure(value: boolean) {
    this.#secure = value;
  }

  /** Whether {@link detach} has taken the connection away for another protocol. */
  get detached(): boolean {
    return this.#detached;
  }

  /** Whether no request is in progress or being received (what a graceful shutdown closes at once). */
  get idle(): boolean {
    return this.#queue.length === 0 && this.#parsing === null;
  }

  // ------------------------------------------------------------------ Protocol

  /** Sets up flow control (the channel produces for the transport), `TCP_NODELAY`, the idle timeout. */
  override connectionMade(): void {
    const t = this.transport as IStreamTransport & { setTcpNoDelay?: (on: boolean) => void };
    if (typeof t.setTcpNoDelay === 'function') t.setTcpNoDelay(true);
    this.output.attach(this.transport, this);
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
   * The client sent FIN (called by the transport). By default the client
   * has gone away: responses already finished are flushed and the
   * connection closes; every request whose response has not finished gets
   * `connectionLost` with `ConnectionLost` at once (its `notifyFinish()`
   * Deferreds fail, its producer is stopped, an incomplete body fails), and
   * requests not dispatched yet with it.
   *
   * With `allowHalfOpen`, a half-close: requests already received are still
   * answered, then the connection closes. A request head the client left
   * incomplete is dropped; a request body it left incomplete fails with
   * `ConnectionLost`, and if that request is the one in progress the
   * connection closes at once (its response could only be for a client
   * that gave up).
   */
  readConnectionLost(): void {
    if (this.#config.allowHalfOpen) {
      this.#peerEOF = true;
      this.#eofCheck();
      return;
    }
    this.#clientGone();
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
    this.#timer.cancel();
    this.#leftover = null;
    this.output.stop();
    const queue = this.#queue;
    this.#queue = [];
    const parsing = this.#parsing;
    this.#parsing = null;
    // A pull producer was registered with the transport, which stopped it already.
    const stopped = this.output.forgetProducer();
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
      this.#timer.arm(T_BODY, this.#config.bodyTimeout);
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
    if (this.#timer.kind === T_BODY) this.#timer.reset(this.#config.bodyTimeout);
  }

  /** @internal The current request is complete. */
  onMessageComplete(trailers: Headers | null): void {
    const request = this.#parsing;
    this.#parsing = null;
    if (request === null) return;
    request.bodyIfAny?.end(trailers);
    if (this.#timer.kind === T_BODY) this.#timer.kind = T_NONE;
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
      this.output.write(CONTINUE);
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
    if (this.output.pause()) this.#pause(P_OUTPUT);
  }

  /** @internal The client reads again: resume the response's producer and reading. */
  resumeProducing(): void {
    if (this.output.resume()) this.#unpause(P_OUTPUT);
  }

  /**
   * @internal The transport let go of us (it is closing or detached). The
   * request's producer is stopped by the request's `connectionLost`, which
   * follows.
   */
  stopProducing(): void {
    this.output.released();
  }

  // ------------------------------------------------------------------ the requests' side

  /** @internal Whether `request`'s response may leave the connection open. */
  mayKeepAlive(request: Request): boolean {
    return request.head.keepAlive && !this.#wontReuse && !this.#closing;
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
    this.output.producerRegistered(producer, streaming);
  }

  /** @internal `request` unregistered its producer. */
  requestProducerUnregistered(
    _request: Request,
    producer: IPushProducer | IPullProducer,
    streaming: boolean,
  ): void {
    if (this.output.producerUnregistered(producer, streaming)) this.#unpause(P_OUTPUT);
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
    this.output.stop();
    this.#timer.cancel();
    this.transport.abortConnection();
  }

  /**
   * Takes the socket away for another protocol (a WebSocket upgrade): the
   * transport's `detach()`, with `head` holding the bytes received after the
   * request head that were not parsed. The channel then forgets the
   * connection: no `connectionLost`, its requests are left as they are
   * (the one being upgraded is ended with `request.upgraded(code)`, which
   * logs it and fires its `notifyFinish()`), the site is told the channel
   * closed.
   * @throws TransportClosedError when the transport cannot be detached.
   */
  detach(): { socket: Socket; head: Buffer } {
    this.output.flush();
    this.output.unregister(false);
    this.output.stop();
    const { socket, head } = this.transport.detach();
    this.#detached = true;
    const left = this.#leftover;
    this.#leftover = null;
    this.#lost = true;
    this.#closing = true;
    this.#timer.cancel();
    this.#queue = [];
    this.#parsing = null;
    this.#config.site?.channelClosed(this);
    const rest = left === null ? head : head.length === 0 ? left : Buffer.concat([left, head]);
    return { socket, head: rest };
  }

  // ------------------------------------------------------------------ internals

  /**
   * Parses `data` with the responses it produces gathered (they leave in
   * one write at the end); keeps what the parser leaves when it pauses.
   */
  #feed(data: Buffer): void {
    const started = this.output.begin();
    try {
      this.#executing = true;
      let consumed: number;
      try {
        consumed = this.#parser.execute(data);
      } finally {
        this.#executing = false;
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
    } finally {
      this.output.end(started);
    }
  }

  #dispatch(request: Request): void {
    this.#timer.kind = T_NONE;
    const site = this.#config.site;
    try {
      if (request.head.expectationFailed) expectationFailed(request);
      else if (site !== null) site.process(request);
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
    if (this.#timer.kind === T_BODY) this.#timer.kind = T_NONE;
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
      this.#timer.kind === T_NONE
    ) {
      this.#timer.arm(T_BODY, this.#config.bodyTimeout);
    }
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
        this.#timer.arm(T_ANSWER, this.#config.closeTimeout);
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
    const { response, bodyLength } = errorResponse(error, this.#config.date.fields());
    this.output.write(response);
    try {
      this.#config.site?.errorSent(this, error.status, bodyLength);
    } catch (e) {
      err(e, 'Unhandled error logging an error response');
    }
    this.#closeConnection();
  }

  /**
   * The client sent FIN and the channel is not half-open: the finished
   * responses leave, then our FIN; the requests left are lost now.
   */
  #clientGone(): void {
    if (this.#closing || this.#lost) return;
    this.#peerEOF = true;
    this.#dispatchLater = null;
    this.#pendingError = null; // it would answer a client that has left
    const queue = this.#queue;
    this.#queue = [];
    const parsing = this.#parsing;
    this.#parsing = null;
    // Gives up the transport's producer slot (a pull producer's too): the
    // requests stop their producers themselves below.
    this.#closeConnection();
    this.output.forgetProducer();
    const lost = new Failure(
      new ConnectionLost('the client closed the connection before the response finished'),
    );
    for (const request of queue) request.connectionLost(lost, false);
    if (parsing !== null && !queue.includes(parsing)) parsing.connectionLost(lost, false);
  }

  /** The peer half-closed (with `allowHalfOpen`): see {@link readConnectionLost}. */
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
    this.output.flush();
    this.#closing = true;
    this.output.stop();
    this.#leftover = null;
    this.#readPause |= P_STOP;
    this.output.unregister(true);
    this.transport.loseConnection();
    if (!this.#lost) this.#timer.arm(T_CLOSE, this.#config.closeTimeout);
  }

  #updateTimer(): void {
    if (this.#closing || this.#lost || this.#timer.kind === T_ANSWER) return;
    const config = this.#config;
    if (this.#queue.length > 0 || this.#parsing !== null) {
      if (this.#timer.kind !== T_BODY) this.#timer.kind = T_NONE;
      return;
    }
    if (this.#parser.idle && this.#leftover === null) {
      if (this.#timer.kind !== T_IDLE) this.#timer.arm(T_IDLE, config.idleTimeout);
    } else if (this.#timer.kind !== T_HEADERS) {
      this.#timer.arm(T_HEADERS, config.headerTimeout);
    }
  }

  /** @internal The one delayed call ran out, waiting for `kind` (see channel-timer.ts). */
  timedOut(kind: number): void {
    if (this.#lost) return;
    switch (kind) {
      case T_IDLE:
        if (this.idle && this.#parser.idle) this.#closeConnection();
        break;
      case T_HEADERS:
        if (this.idle) {
          this.#protocolError(
            new HTTPError(
              408,
              'request head not complete in time',
              'TORSION_ERR_HTTP_HEADER_TIMEOUT',
            ),
          );
        }
        break;
      case T_BODY:
        this.#protocolError(
          new HTTPError(408, 'request body not received in time', 'TORSION_ERR_HTTP_BODY_TIMEOUT'),
        );
        break;
      case T_CLOSE:
      case T_ANSWER:
        this.abortConnection();
        break;
    }
  }
}
