/**
 * {@link AppDriver}: runs one app call for one request. It builds the
 * environ, calls the app, takes its body and writes it to the request under
 * flow control, and ends the exchange exactly once.
 *
 * Taking the body:
 * - the request's own `AsyncBody`: its puts are written as they come
 *   (queued in the body while the client is slow); nothing polls;
 * - any other iterable (a generator, an array, a middleware's wrapper): a
 *   {@link BodyPuller} pulls chunks while the client keeps up (the driver is
 *   the request's push producer, so the channel pauses it when the
 *   connection's buffer passes its high-water mark). An empty chunk means
 *   "nothing yet": the puller backs off (1 ms doubling to 100 ms by
 *   default); a `put`/`finish` on the request's `AsyncBody` wakes it early.
 *
 * After a megabyte or a thousand chunks written in a row, the driver lets the
 * reactor run other work before taking more (fairness; and for a bodiless
 * response, HEAD or 204, whose bytes never fill the socket, the only pause).
 *
 * Endings (each closes the body once: `close()`/`return()` of the app's
 * iterable, `onClose` hooks, the input's timer):
 * - completed: the iteration ended or `finish()` and the queue drained; the
 *   head goes out if it has not (an empty body), then `request.finish()`;
 * - failed: an app error before the head went out answers 500 (logged), or
 *   the status of an `HTTPException`, or for a `BrokenPipeError` the app let
 *   through, 408 (a timeout) or the 4xx of the malformed body behind it;
 *   after the head, or for `fail()` and an unheard broken input, the
 *   connection is aborted (logged);
 * - the client went away: everything stops quietly.
 *
 * @module
 */

import { isThenable } from '../../reactor/deferred.js';
import { ConnectionLost, InvalidArgumentError } from '../../reactor/errors.js';
import type { IDelayedCall, IPushProducer, IReactorTime } from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import { reactor as globalReactor } from '../../reactor/reactor.js';
import { HTTPException } from '../errors.js';
import type { IRequest } from '../iweb.js';
import { AsyncBody, asyncBodyControl, type BodyChunk, type BodyDriver } from './async-body.js';
import { buildEnviron, type Environ, ErrorStream } from './environ.js';
import { AppProtocolError, BrokenPipeError } from './errors.js';
import { AppInput, closeInput, type InputOwner } from './input.js';
import { BodyPuller, cleanup, describe, isChunk, type PullTarget } from './puller.js';
import { arrayLength, ResponseStart, respondWhole } from './response.js';
import type { App, AppBody, AsyncApp, StartResponse, WriteFunction } from './types.js';

/** The settings an `AppResource` gives each driver. */
export interface AppConfig {
  /** Time for the input timeout and the back-off; `null`: the request's channel's reactor. */
  readonly reactor: IReactorTime | null;
  /** Seconds a read of the input may wait for the client; 0: no limit. */
  readonly inputTimeout: number;
  /** First back-off delay after an empty chunk, in ms. */
  readonly backoffInitial: number;
  /** Longest back-off delay, in ms. */
  readonly backoffMax: number;
  /** The longest line `readline()` (without a size) returns. */
  readonly maxLineLength: number;
}

/** What the driver reaches on a torsion `Request` beyond `IRequest` (absent on other requests). */
interface RequestExtras {
  readonly channel?: {
    readonly reactor?: IReactorTime;
    abortConnection?(): void;
    readonly transport?: { readonly bufferedAmount?: number };
  };
}

const M_WAIT = 0; // the app has not returned its body yet
const M_DIRECT = 1; // the request's AsyncBody
const M_PULL = 2; // an iterator or async iterator, through a BodyPuller

/** Pulled in a row before the driver lets the reactor run (fairness; bodiless responses). */
const TURN_BYTES = 1024 * 1024;
const TURN_CHUNKS = 1024;

const control = asyncBodyControl();

/** An error that only says the client went away (not worth a log line once it has). */
function clientGone(error: unknown): boolean {
  return (
    error instanceof ConnectionLost ||
    (error instanceof BrokenPipeError && error.cause instanceof ConnectionLost)
  );
}

/**
 * One app call (see the module documentation). It is the request's push
 * producer for the whole response, the `AsyncBody`'s driver and the input's
 * owner. Made and started by `AppResource.render`.
 */
export class AppDriver implements IPushProducer, BodyDriver, InputOwner, PullTarget {
  readonly #request: IRequest;
  readonly #extras: RequestExtras;
  readonly #app: App | AsyncApp;
  readonly #config: AppConfig;
  /** Time: the input timeout and the back-off. */
  readonly #clock: IReactorTime;
  /** Turns: pull producers, fairness yields (the channel's reactor). */
  readonly #turns: IReactorTime;
  readonly #input: AppInput;
  readonly #body: AsyncBody;
  readonly #errors: ErrorStream;
  readonly #environ: Environ;
  readonly #startResponse: StartResponse;
  readonly #write: WriteFunction;

  readonly #response: ResponseStart;

  #mode = M_WAIT;

  #result: unknown = null;
  #resultKnown = false;
  #resultClosed = false;
  #puller: BodyPuller | null = null;
  #iterator: Iterator<unknown> | AsyncIterator<unknown> | null = null;

  /** The channel paused us (the client reads slowly). */
  #outputPaused = false;
  /** We paused ourselves to let the reactor run (a bodiless response). */
  #throttled = false;
  #yieldCall: IDelayedCall | null = null;
  #turnBytes = 0;
  #turnChunks = 0;
  /** Body bytes written (counted for HEAD too), to check a declared `Content-Length`. */
  #written = 0;

  #lost = false;
  #closed = false;
  /** The error that ended the exchange (reported once). */
  #failure: unknown = null;

  constructor(config: AppConfig, request: IRequest, app: App | AsyncApp) {
    this.#request = request;
    this.#extras = request as IRequest & RequestExtras;
    this.#app = app;
    this.#config = config;
    const channelReactor = this.#extras.channel?.reactor;
    this.#turns = channelReactor ?? globalReactor;
    this.#clock = config.reactor ?? this.#turns;
    this.#input = new AppInput(
      request.bodyStream(),
      this,
      this.#clock,
      config.inputTimeout,
      config.maxLineLength,
    );
    this.#body = new AsyncBody(this, this.#input);
    this.#errors = new ErrorStream(`wsgi.errors (${request.method} ${request.uri}): `);
    this.#environ = buildEnviron(request, {
      input: this.#input,
      errors: this.#errors,
      body: this.#body,
    });
    this.#response = new ResponseStart(request);
    this.#startResponse = (status, headers, error) => {
      this.#response.start(status, headers, error);
      return this.#write;
    };
    this.#write = (data) => this.#legacyWrite(data);
  }

  /** Registers with the request, calls the app, and starts taking its body. */
  start(): void {
    const request = this.#request;
    request.notifyFinish().addCallbacks(
      () => null,
      () => {
        this.#clientGone();
        return null;
      },
    );
    if (this.#closed) return;
    try {
      request.registerProducer(this, true);
    } catch (e) {
      this.#appFailed(e);
      return;
    }
    if (this.#closed) return;
    let result: AppBody | PromiseLike<AppBody>;
    try {
      result = this.#app(this.#environ, this.#startResponse);
    } catch (e) {
      this.#appFailed(e);
      return;
    }
    if (isThenable(result) && !(result instanceof AsyncBody)) {
      result.then(
        (body) => this.#begin(body),
        (e: unknown) => this.#appFailed(e),
      );
      return;
    }
    this.#begin(result as AppBody);
  }

  // ------------------------------------------------------------------ IPushProducer (the request's)

  /** @internal The client reads slowly: stop writing (puts queue up in the body). */
  pauseProducing(): void {
    if (this.#outputPaused) return;
    this.#outputPaused = true;
    control.setPaused(this.#body, true);
  }

  /** @internal The client caught up: send what was queued, then let the app produce again. */
  resumeProducing(): void {
    if (!this.#outputPaused) return;
    this.#outputPaused = false;
    this.#go();
    if (!this.#closed) control.setPaused(this.#body, this.#paused);
  }

  /** @internal The connection is gone. */
  stopProducing(): void {
    this.#clientGone();
  }

  // ------------------------------------------------------------------ BodyDriver

  /** @internal */
  bodyWrite(chunk: BodyChunk): void {
    try {
      this.#send(chunk);
    } catch (e) {
      this.#appFailed(e);
    }
  }

  /** @internal */
  bodyWake(): void {
    if (this.#closed) return;
    if (this.#mode === M_DIRECT) this.#flushDirect();
    // Backing off after an empty chunk: the async body has something now.
    else this.#puller?.wake();
  }

  /** @internal */
  bodyFailed(error: Error): void {
    this.#abort(error, 'AsyncBody.fail() called');
  }

  /** @internal */
  appCallbackFailed(error: unknown): void {
    this.#appFailed(error);
  }

  /** @internal */
  connectionBuffered(): number {
    return this.#extras.channel?.transport?.bufferedAmount ?? 0;
  }

  /** @internal */
  callSoon(fn: (body: AsyncBody) => void, body: AsyncBody): IDelayedCall {
    return this.#turns.callLater(0, fn, body);
  }

  // ------------------------------------------------------------------ InputOwner

  /** @internal */
  inputReplaced(): boolean {
    return this.#environ['wsgi.input'] !== this.#input;
  }

  /** @internal */
  inputTimedOut(_error: BrokenPipeError): void {
    // The rest of the body will not be read: the connection cannot carry another request.
    this.#response.closeAfter();
  }

  /** @internal */
  inputFailedUnheard(error: Error): void {
    this.#abort(error, 'The request body broke off under an onGet() without onError');
  }

  // ------------------------------------------------------------------ startResponse

  #legacyWrite(data: BodyChunk): void {
    if (!isChunk(data)) throw new InvalidArgumentError('write(): data must be a string or bytes');
    if (!this.#response.started) throw new AppProtocolError('write() before startResponse()');
    if (this.#closed) {
      if (this.#lost) return;
      throw new AppProtocolError('write() after the response ended');
    }
    if (data.length === 0) return;
    this.#send(data);
  }

  // ------------------------------------------------------------------ taking the body

  #begin(result: AppBody): void {
    this.#result = result;
    this.#resultKnown = true;
    if (this.#closed) {
      // Over already (the client went away while the app worked): still close it.
      this.#closeResult();
      return;
    }
    if (result === this.#body) {
      this.#mode = M_DIRECT;
      control.setDirect(this.#body);
      this.#flushDirect();
      return;
    }
    let iterable: unknown = result;
    if (isChunk(iterable)) iterable = [iterable];
    let iterator: Iterator<unknown> | AsyncIterator<unknown> | null = null;
    let async = false;
    try {
      const it = iterable as Partial<Iterable<unknown> & AsyncIterable<unknown>> | null;
      if (it !== null && (typeof it === 'object' || typeof it === 'function')) {
        if (typeof it[Symbol.asyncIterator] === 'function') {
          iterator = (it as AsyncIterable<unknown>)[Symbol.asyncIterator]();
          async = true;
        } else if (typeof it[Symbol.iterator] === 'function') {
          if (Array.isArray(it)) {
            // Checked whole before anything is sent: a bad element is a 500, not a truncated response.
            const length = arrayLength(it);
            if (length < 0) {
              const bad = it.find((item) => !isChunk(item));
              throw new AppProtocolError(
                `the app returned an array holding ${describe(bad)}: chunks are strings or bytes`,
              );
            }
            this.#response.knownLength(length);
          }
          iterator = (it as Iterable<unknown>)[Symbol.iterator]();
        }
      }
      if (
        iterator === null ||
        typeof iterator !== 'object' ||
        typeof iterator.next !== 'function'
      ) {
        throw new AppProtocolError(
          `the app returned ${describe(result)}: expected an iterable, an async iterable or environ['torsion.async']`,
        );
      }
    } catch (e) {
      this.#appFailed(e);
      return;
    }
    const config = this.#config;
    this.#mode = M_PULL;
    this.#iterator = iterator;
    this.#puller = new BodyPuller(
      this,
      iterator,
      async,
      this.#clock,
      config.backoffInitial,
      config.backoffMax,
    );
    this.#puller.pump();
  }

  get #paused(): boolean {
    return this.#outputPaused || this.#throttled;
  }

  /** Takes the body on after a pause, a yield or a back-off. */
  #go(): void {
    if (this.#closed) return;
    if (this.#mode === M_DIRECT) this.#flushDirect();
    else this.#puller?.pump();
  }

  /** Direct mode: sends what the async body queued while we were paused; completes once it finished. */
  #flushDirect(): void {
    const body = this.#body;
    let taken = false;
    while (!this.#paused && !this.#closed) {
      const chunk = control.take(body);
      if (chunk === null) break;
      taken = true;
      try {
        this.#send(chunk);
      } catch (e) {
        this.#appFailed(e);
        return;
      }
    }
    if (this.#closed) return;
    if (!this.#paused && control.done(body)) this.#complete();
    else if (taken) control.flushed(body);
  }

  // ------------------------------------------------------------------ PullTarget

  /** @internal Whether the puller may take a chunk: the exchange is on, the client keeps up. */
  canPull(): boolean {
    if (this.#closed || this.#paused || this.#yieldCall !== null) return false;
    if (this.#turnBytes >= TURN_BYTES || this.#turnChunks >= TURN_CHUNKS) {
      this.#yieldTurn();
      return false;
    }
    return true;
  }

  /** @internal */
  pulled(chunk: BodyChunk): void {
    try {
      this.#send(chunk);
    } catch (e) {
      this.#appFailed(e);
    }
  }

  /** @internal */
  pullDone(): void {
    this.#complete();
  }

  /** @internal */
  pullFailed(error: unknown): void {
    this.#appFailed(error);
  }

  /** Lets the reactor run other work before taking more of the body. */
  #yieldTurn(): void {
    if (this.#yieldCall === null)
      this.#yieldCall = this.#turns.callLater(0, AppDriver.#yielded, this);
  }

  static #yielded(driver: AppDriver): void {
    driver.#yieldCall = null;
    driver.#turnBytes = 0;
    driver.#turnChunks = 0;
    if (driver.#throttled) {
      driver.#throttled = false;
      driver.#go();
      if (!driver.#closed) control.setPaused(driver.#body, driver.#paused);
      return;
    }
    driver.#go();
  }

  // ------------------------------------------------------------------ writing

  /** Writes a non-empty chunk (the head first). */
  #send(chunk: BodyChunk): void {
    const response = this.#response;
    response.send();
    this.#request.write(chunk);
    this.#written += chunk.length;
    this.#turnBytes += chunk.length;
    this.#turnChunks++;
    if (response.bodiless && this.#turnBytes >= TURN_BYTES && !this.#throttled) {
      // Nothing reaches the socket (HEAD, 204, 304), so the channel never
      // pauses us: pause ourselves until the next turn.
      this.#throttled = true;
      control.setPaused(this.#body, true);
      this.#yieldTurn();
    }
  }

  // ------------------------------------------------------------------ endings

  #complete(): void {
    if (this.#closed) return;
    if (!this.#response.started) {
      this.#appFailed(new AppProtocolError('the app returned without calling startResponse()'));
      return;
    }
    const declared = this.#response.shortLength(this.#written);
    if (declared >= 0) {
      // PEP 3333: a body short of its Content-Length must not look complete
      // (a 500 if nothing was sent yet, else the connection is aborted).
      this.#appFailed(
        new AppProtocolError(
          `the body ended after ${this.#written} bytes, short of its Content-Length ${declared}`,
        ),
      );
      return;
    }
    try {
      this.#response.send();
      this.#request.finish();
    } catch (e) {
      this.#appFailed(e);
      return;
    }
    this.#close(true);
  }

  /** An app error: 500 (or an `HTTPException`'s status) before the head went out, else abort. */
  #appFailed(error: unknown): void {
    const request = this.#request;
    const what = `${request.method} ${request.uri}`;
    if (this.#closed) {
      // The error that ended the exchange comes back through the body's
      // iteration too: it was reported once already.
      if (error !== this.#failure && !(this.#lost && clientGone(error))) {
        err(error, `Error in the app for ${what} after its response ended`);
      }
      return;
    }
    this.#failure = error;
    if (this.#response.sent || request.startedWriting || request.finished) {
      this.#abort(error, 'Error in the app after its response started');
      return;
    }
    // A broken input the app let through answers for the client's fault:
    // 408 for a timeout, the 4xx of a malformed body.
    const exception =
      HTTPException.from(error) ??
      (error instanceof BrokenPipeError
        ? error.timedOut
          ? new HTTPException(408, error.message, { cause: error })
          : HTTPException.from(error.cause)
        : null);
    this.#close(false);
    request.responseHeaders.clear();
    if (this.#response.closing) request.setHeader('Connection', 'close');
    try {
      if (exception !== null) {
        respondWhole(request, exception.render(request));
        return;
      }
      err(error, `Unhandled error in the app for ${what}`);
      request.setResponseCode(500);
      request.setHeader('Content-Type', 'text/plain; charset=utf-8');
      respondWhole(request, 'Internal Server Error\n');
    } catch (e) {
      err(e, `Error writing the error response for ${what}`);
      this.#abortConnection();
    }
  }

  /** Ends the exchange by dropping the connection (a truncated response never looks complete). */
  #abort(error: unknown, why: string): void {
    if (this.#closed) return;
    this.#failure = error;
    if (!(this.#lost || clientGone(error))) {
      const request = this.#request;
      err(error, `${why} (${request.method} ${request.uri}): connection aborted`);
    }
    this.#close(false);
    this.#abortConnection();
  }

  #abortConnection(): void {
    const abort = this.#extras.channel?.abortConnection;
    if (typeof abort === 'function') abort.call(this.#extras.channel);
  }

  #clientGone(): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#close(false);
  }

  /** The one end of the exchange: timers, the input, the async body, the app's iterable. */
  #close(completed: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    const yieldCall = this.#yieldCall;
    this.#yieldCall = null;
    if (yieldCall?.active()) yieldCall.cancel();
    if (!completed) {
      try {
        this.#request.unregisterProducer();
      } catch (e) {
        err(e, 'Unhandled error unregistering the app producer');
      }
    }
    closeInput(this.#input);
    control.close(this.#body, completed);
    if (this.#resultKnown) this.#closeResult();
    this.#errors.flush();
  }

  /**
   * `return()` of an iterator left before its end, then `close()` of the
   * app's body (and of its iterator, if that is another object with one):
   * once each.
   */
  #closeResult(): void {
    if (this.#resultClosed) return;
    this.#resultClosed = true;
    this.#puller?.close();
    closeOnce(this.#result, this.#body);
    if (this.#iterator !== this.#result) closeOnce(this.#iterator, this.#body);
  }
}

/** Calls `target.close()` if it has one (and is not the request's own body), logging a failure. */
function closeOnce(target: unknown, body: AsyncBody): void {
  if (target === null || typeof target !== 'object' || target === body) return;
  const close = (target as { close?: unknown }).close;
  if (typeof close === 'function') {
    cleanup(() => close.call(target), 'Unhandled error in the app body close()');
  }
}
