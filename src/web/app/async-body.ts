/**
 * {@link AsyncBody}: the seed's "special iterator", one per request, found in
 * `environ['torsion.async']`. An app returns it (or a middleware wraps it)
 * and talks to the server through it: `put`/`finish`/`fail` for output,
 * `onGet` for input, `writable`/`onDrain`/`registerProducer` for output flow
 * control, `onClose` for the end of the response.
 *
 * How the server takes the output (the driver, `./driver.ts`, decides):
 * - the app returned this body itself: each `put` goes straight to the
 *   connection while the client keeps up; while it is slow, puts wait in the
 *   body's queue (the only buffer, visible as `writable === false`) and go
 *   out when it catches up. Nothing polls: an empty queue just waits for the
 *   next `put` or `finish` (the seed's out-of-band pause/resume);
 * - a middleware iterates it: `next()` of its iterator returns the next
 *   queued chunk, an empty chunk when nothing is queued ("nothing yet", the
 *   seed's empty string), and ends after `finish()`; its async iterator waits
 *   for the next `put` instead. Either way a `put` also wakes the server if
 *   it is backing off.
 *
 * @module
 */

import { InvalidArgumentError, ProducerAlreadyRegistered } from '../../reactor/errors.js';
import type { IDelayedCall, IPullProducer, IPushProducer } from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import { AppProtocolError } from './errors.js';
import { type AppInput, inputOnGet } from './input.js';

/** A piece of a response body: bytes, or a string sent as UTF-8. */
export type BodyChunk = Uint8Array | string;

/** What the server (the request's driver) does for the body. */
export interface BodyDriver {
  /** Writes `chunk` to the response now (direct mode, output not paused, nothing queued). */
  bodyWrite(chunk: BodyChunk): void;
  /** A chunk was queued or the body finished: a driver waiting for the body goes on. */
  bodyWake(): void;
  /** The app called `fail(error)`. */
  bodyFailed(error: Error): void;
  /** A callback the body ran for the app (a producer method, an `onDrain` callback) threw. */
  appCallbackFailed(error: unknown): void;
  /** Bytes written to the connection and not yet handed to the kernel. */
  connectionBuffered(): number;
  /** Runs `fn(body)` on a later turn of the reactor. */
  callSoon(fn: (body: AsyncBody) => void, body: AsyncBody): IDelayedCall;
}

/** The driver's side of a body (not for apps). */
export interface AsyncBodyControl {
  /** The app returned the body itself: puts go straight to the connection from now on. */
  setDirect(body: AsyncBody): void;
  /**
   * Takes the next queued chunk, or `null`. The producer and the drain
   * callbacks are not told yet (what they put must not overtake the chunk):
   * call {@link flushed} once the chunks taken are written.
   */
  take(body: AsyncBody): BodyChunk | null;
  /** The chunks taken are written: tell the producer and the drain callbacks if the body became writable. */
  flushed(body: AsyncBody): void;
  /** Whether `finish()` was called and the queue is empty. */
  done(body: AsyncBody): boolean;
  /** The client is slow (`true`) or caught up (`false`). */
  setPaused(body: AsyncBody, paused: boolean): void;
  /**
   * The response is over: `onClose` hooks run (once), a producer still
   * registered is stopped unless the response completed, puts are dropped.
   */
  close(body: AsyncBody, completed: boolean): void;
}

/** Queued bytes past which the body is not {@link AsyncBody.writable} (a middleware pulls them). */
export const QUEUE_HIGH_WATER = 64 * 1024;

const EMPTY = Buffer.alloc(0);
const DONE: IteratorResult<BodyChunk> = Object.freeze({ done: true, value: undefined });

let control!: AsyncBodyControl;

/** The driver's handle on bodies (see {@link AsyncBodyControl}). */
export function asyncBodyControl(): AsyncBodyControl {
  return control;
}

function byteLength(chunk: BodyChunk): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk, 'utf8') : chunk.length;
}

/**
 * The request's async body (see the module documentation). Made by the
 * server; apps get it from `environ['torsion.async']`. Its iterators are for
 * the server or a middleware: one consumer at a time.
 */
export class AsyncBody implements Iterable<BodyChunk>, AsyncIterable<BodyChunk> {
  readonly #driver: BodyDriver;
  readonly #input: AppInput;

  #queue: BodyChunk[] = [];
  #head = 0;
  #queued = 0;
  #finished = false;
  #failure: Error | null = null;
  #closed = false;
  #direct = false;
  #paused = false;

  /** The last {@link writable} the producer and the drain callbacks were told. */
  #writable = true;
  #updating = false;
  #dirty = false;

  #producer: IPushProducer | IPullProducer | null = null;
  #streaming = false;
  #producerPaused = false;
  /** A pull producer was asked for more and has not put since. */
  #pullArmed = false;
  #pullCall: IDelayedCall | null = null;

  #drains: (() => void)[] = [];
  #drainCheckScheduled = false;
  #closes: (() => void)[] = [];

  #waitResolve: ((result: IteratorResult<BodyChunk>) => void) | null = null;
  #waitReject: ((reason: unknown) => void) | null = null;

  readonly #drainCheck: () => void;

  static {
    control = {
      setDirect: (body) => {
        body.#direct = true;
      },
      take: (body) => body.#shift(false),
      flushed: (body) => body.#update(),
      done: (body) => body.#finished && body.#head === body.#queue.length,
      setPaused: (body, paused) => {
        if (body.#paused === paused) return;
        body.#paused = paused;
        body.#update();
      },
      close: (body, completed) => body.#close(completed),
    };
  }

  /** Made by the server for each request. */
  constructor(driver: BodyDriver, input: AppInput) {
    this.#driver = driver;
    this.#input = input;
    this.#drainCheck = () => {
      this.#drainCheckScheduled = false;
      if (this.writable) this.#fireDrains();
    };
  }

  // ------------------------------------------------------------------ output

  /**
   * Queues `data` for the response (a string is sent as UTF-8; empty data
   * is ignored). The response head goes out with the first non-empty chunk.
   * `put` never refuses data for flow control: check {@link writable} (or
   * register a producer) to stop producing while the client is slow.
   * After the response is over (the client went away) data is dropped.
   * @throws InvalidArgumentError if `data` is not a string or bytes.
   * @throws AppProtocolError after `finish()` or `fail()`.
   */
  put(data: BodyChunk): void {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
      throw new InvalidArgumentError('put(): data must be a string or bytes');
    }
    if (this.#finished) throw new AppProtocolError('put() after finish()');
    if (this.#failure !== null) throw new AppProtocolError('put() after fail()');
    if (this.#closed || data.length === 0) return;
    if (this.#pullArmed) {
      this.#pullArmed = false;
      this.#schedulePull();
    }
    const waiter = this.#waitResolve;
    if (waiter !== null) {
      // An async iteration waits: it takes the chunk (nothing is queued).
      this.#waitResolve = null;
      this.#waitReject = null;
      waiter({ done: false, value: data });
      return;
    }
    if (this.#direct && !this.#paused && this.#head === this.#queue.length) {
      // May pause us (setPaused) when the connection's buffer fills.
      this.#driver.bodyWrite(data);
      return;
    }
    this.#queue.push(data);
    this.#queued += byteLength(data);
    this.#driver.bodyWake();
    this.#update();
  }

  /**
   * Ends the body: once the queued chunks are sent, the response finishes
   * (iterators end). Idempotent; ignored after `fail()` or the end of the
   * response.
   */
  finish(): void {
    if (this.#finished || this.#failure !== null || this.#closed) return;
    this.#finished = true;
    const waiter = this.#waitResolve;
    if (waiter !== null) {
      this.#waitResolve = null;
      this.#waitReject = null;
      waiter(DONE);
    }
    this.#driver.bodyWake();
    this.#update();
  }

  /**
   * Aborts the response: the connection is closed (the client sees a
   * truncated response, never a complete-looking one) and `error` is logged.
   * Iterators throw `error`. Ignored after the end of the response and after
   * an earlier `fail`.
   */
  fail(error: unknown): void {
    if (this.#closed || this.#failure !== null) return;
    const e = error instanceof Error ? error : new Error(String(error));
    this.#failure = e;
    const reject = this.#waitReject;
    if (reject !== null) {
      this.#waitResolve = null;
      this.#waitReject = null;
      reject(e);
    }
    this.#driver.bodyFailed(e);
  }

  /**
   * `false` while the client reads slowly, while 64 KiB or more wait in the
   * queue, and after `finish()`/`fail()` or the end of the response. Put
   * while it is `true`; wait for {@link onDrain} when it is `false`.
   */
  get writable(): boolean {
    return (
      !this.#closed &&
      !this.#finished &&
      this.#failure === null &&
      !this.#paused &&
      this.#queued < QUEUE_HIGH_WATER
    );
  }

  /**
   * Output not yet handed to the kernel: bytes queued in this body plus the
   * connection's unflushed bytes (which include the HTTP framing).
   */
  get bufferedBytes(): number {
    return this.#queued + (this.#closed ? 0 : this.#driver.connectionBuffered());
  }

  /**
   * Calls `callback()` once, the next time the body is {@link writable}
   * (soon, on a microtask, if it is writable now). Callbacks pending when the
   * response ends are dropped (see {@link onClose}). An exception from the
   * callback is the app's error (500 or abort).
   * @throws InvalidArgumentError if `callback` is not a function.
   */
  onDrain(callback: () => void): void {
    if (typeof callback !== 'function') {
      throw new InvalidArgumentError('onDrain(): callback must be a function');
    }
    if (this.#closed) return;
    this.#drains.push(callback);
    if (this.writable && !this.#drainCheckScheduled) {
      this.#drainCheckScheduled = true;
      queueMicrotask(this.#drainCheck);
    }
  }

  /**
   * Registers the producer of this body, as with any Twisted consumer. A
   * push producer (`streaming = true`) gets `pauseProducing()` when the body
   * stops being {@link writable} and `resumeProducing()` when it is writable
   * again (if it was registered while the body was not writable, it is paused
   * at once). A pull producer gets `resumeProducing()` on a later turn when
   * the body is writable, and again each time it has put something and the
   * body is writable again. When the response ends other than by completing
   * (client gone, failure), a producer still registered gets
   * `stopProducing()`; after a completed response it is just forgotten.
   * Registered after the end: stopped at once.
   * @throws ProducerAlreadyRegistered if one is registered.
   * @throws InvalidArgumentError if `producer` lacks the methods it needs.
   */
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    if (
      producer === null ||
      typeof producer !== 'object' ||
      typeof producer.resumeProducing !== 'function' ||
      typeof producer.stopProducing !== 'function' ||
      (streaming && typeof (producer as IPushProducer).pauseProducing !== 'function')
    ) {
      throw new InvalidArgumentError(
        `registerProducer(): not a ${streaming ? 'push' : 'pull'} producer`,
      );
    }
    if (this.#producer !== null) throw new ProducerAlreadyRegistered();
    if (this.#closed) {
      try {
        producer.stopProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.stopProducing()');
      }
      return;
    }
    this.#producer = producer;
    this.#streaming = streaming === true;
    this.#producerPaused = false;
    this.#pullArmed = false;
    if (this.#streaming) {
      if (!this.writable) {
        this.#producerPaused = true;
        this.#callProducer(producer, 'pauseProducing');
      }
    } else if (this.writable) {
      this.#schedulePull();
    }
  }

  /** Forgets the registered producer (it is not stopped). */
  unregisterProducer(): void {
    this.#producer = null;
    this.#pullArmed = false;
  }

  /**
   * Calls `callback()` once when the response is over: it completed, failed
   * (an app error, `fail()`, a broken input) or the client went away. Called
   * at once if it is already over. An exception from it is logged.
   * @throws InvalidArgumentError if `callback` is not a function.
   */
  onClose(callback: () => void): void {
    if (typeof callback !== 'function') {
      throw new InvalidArgumentError('onClose(): callback must be a function');
    }
    if (this.#closed) runHook(callback);
    else this.#closes.push(callback);
  }

  /** `true` once the response is over (see {@link onClose}). */
  get closed(): boolean {
    return this.#closed;
  }

  // ------------------------------------------------------------------ input

  /**
   * The seed's `on_get`: one-shot. Returns at once; later, `callback(data)`
   * with at most `length` bytes (`length` is a hint: an upper bound) once
   * some input is available, or `callback(emptyBuffer)` at the end of the
   * input (and for every later `onGet`). Call it again for more. While no
   * `onGet` (nor a `wsgi.input` read) is pending, the server reads at most a
   * small buffer (64 KiB) of the body and then stops reading the client.
   * When the input breaks (client gone, malformed body, nothing for
   * `inputTimeout` seconds) `onError(BrokenPipeError)` is called instead; without
   * `onError` the response is aborted (never silently truncated). An
   * exception from either callback is the app's error (500 or abort).
   * @throws InvalidArgumentError for a `length` that is not a positive number, or bad callbacks.
   * @throws InputBusyError if an `onGet` (or a `wsgi.input` read) is pending.
   * @throws InputReplacedError if `environ['wsgi.input']` was replaced by a middleware.
   */
  onGet(length: number, callback: (data: Buffer) => void, onError?: (error: Error) => void): void {
    inputOnGet(this.#input, length, callback, onError);
  }

  // ------------------------------------------------------------------ iteration

  /**
   * For a middleware (or the server): each `next()` is the next queued chunk,
   * an empty Buffer when nothing is queued yet ("nothing yet": iterate again
   * later), done after `finish()` once the queue is empty or once the
   * response is over. Throws the error given to `fail()`.
   */
  [Symbol.iterator](): Iterator<BodyChunk> {
    return {
      next: () => this.#syncNext(),
      return: () => DONE,
    };
  }

  /**
   * For a middleware (or the server): each `next()` resolves with the next
   * chunk, waiting for a `put` when none is queued; done after `finish()`
   * (queue empty) or once the response is over; rejects with the error given
   * to `fail()`. One `next()` at a time (a second concurrent one rejects with
   * AppProtocolError).
   */
  [Symbol.asyncIterator](): AsyncIterator<BodyChunk> {
    return {
      next: () => this.#asyncNext(),
      return: () => Promise.resolve(DONE),
    };
  }

  // ------------------------------------------------------------------ internals

  #syncNext(): IteratorResult<BodyChunk> {
    if (this.#failure !== null) throw this.#failure;
    const chunk = this.#shift(true);
    if (chunk !== null) return { done: false, value: chunk };
    if (this.#finished || this.#closed) return DONE;
    return { done: false, value: EMPTY };
  }

  #asyncNext(): Promise<IteratorResult<BodyChunk>> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    const chunk = this.#shift(true);
    if (chunk !== null) return Promise.resolve({ done: false, value: chunk });
    if (this.#finished || this.#closed) return Promise.resolve(DONE);
    if (this.#waitResolve !== null) {
      return Promise.reject(new AppProtocolError('AsyncBody: next() while a next() is pending'));
    }
    return new Promise((resolve, reject) => {
      this.#waitResolve = resolve;
      this.#waitReject = reject;
    });
  }

  /**
   * Dequeues a chunk; with `update`, tells the producer and the drain
   * callbacks at once (a middleware's iteration: what they put is queued
   * behind the chunk anyway).
   */
  #shift(update: boolean): BodyChunk | null {
    const queue = this.#queue;
    if (this.#head === queue.length) return null;
    const chunk = queue[this.#head]!;
    queue[this.#head++] = EMPTY;
    if (this.#head === queue.length) {
      queue.length = 0;
      this.#head = 0;
      this.#queued = 0;
    } else {
      this.#queued -= byteLength(chunk);
      if (this.#head > 1024 && this.#head * 2 > queue.length) {
        this.#queue = queue.slice(this.#head);
        this.#head = 0;
      }
    }
    if (update) this.#update();
    return chunk;
  }

  /** Tells the producer and the drain callbacks when {@link writable} changes (re-entrancy safe). */
  #update(): void {
    if (this.#updating) {
      this.#dirty = true;
      return;
    }
    this.#updating = true;
    try {
      do {
        this.#dirty = false;
        const writable = this.writable;
        if (writable === this.#writable) continue;
        this.#writable = writable;
        if (writable) this.#becameWritable();
        else this.#becameFull();
      } while (this.#dirty);
    } finally {
      this.#updating = false;
    }
  }

  #becameFull(): void {
    // Only the client's pace pauses a producer, not the end of the body.
    if (this.#finished || this.#failure !== null) return;
    const producer = this.#producer;
    if (producer !== null && this.#streaming && !this.#producerPaused) {
      this.#producerPaused = true;
      this.#callProducer(producer, 'pauseProducing');
    }
  }

  #becameWritable(): void {
    const producer = this.#producer;
    if (producer !== null) {
      if (!this.#streaming) {
        if (!this.#pullArmed) this.#schedulePull();
      } else if (this.#producerPaused) {
        this.#producerPaused = false;
        this.#callProducer(producer, 'resumeProducing');
      }
    }
    if (this.#drains.length > 0) this.#fireDrains();
  }

  #fireDrains(): void {
    const drains = this.#drains;
    this.#drains = [];
    for (const callback of drains) {
      try {
        callback();
      } catch (e) {
        this.#driver.appCallbackFailed(e);
      }
    }
  }

  #callProducer(producer: IPushProducer | IPullProducer, method: keyof IPushProducer): void {
    try {
      (producer as IPushProducer)[method]();
    } catch (e) {
      this.#driver.appCallbackFailed(e);
    }
  }

  #schedulePull(): void {
    if (this.#pullCall !== null || this.#closed) return;
    this.#pullCall = this.#driver.callSoon(AsyncBody.#pull, this);
  }

  /** A pull producer's turn: asked for more if the body is writable. */
  static #pull(body: AsyncBody): void {
    body.#pullCall = null;
    const producer = body.#producer;
    if (producer === null || body.#streaming || body.#pullArmed || !body.writable) return;
    body.#pullArmed = true;
    body.#callProducer(producer, 'resumeProducing');
  }

  #close(completed: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#drains = [];
    this.#queue = [];
    this.#head = 0;
    this.#queued = 0;
    const producer = this.#producer;
    this.#producer = null;
    this.#pullArmed = false;
    const pull = this.#pullCall;
    this.#pullCall = null;
    if (pull?.active()) pull.cancel();
    if (producer !== null && !completed) {
      try {
        producer.stopProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.stopProducing()');
      }
    }
    const waiter = this.#waitResolve;
    if (waiter !== null) {
      this.#waitResolve = null;
      this.#waitReject = null;
      waiter(DONE);
    }
    this.#writable = false;
    const closes = this.#closes;
    this.#closes = [];
    for (const callback of closes) runHook(callback);
  }
}

function runHook(callback: () => void): void {
  try {
    callback();
  } catch (e) {
    err(e, 'Unhandled error in an AsyncBody onClose callback');
  }
}
