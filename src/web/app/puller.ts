/**
 * {@link BodyPuller}: takes an app's body that is an iterator or an async
 * iterator (a generator, an array, a middleware's wrapper) for the request's
 * driver: it pulls chunks while the driver can write them, and when a chunk
 * is empty ("nothing yet", the seed's empty string) it waits before pulling
 * again: `initial` ms, doubling up to `max`, back to `initial` after a
 * non-empty chunk; {@link BodyPuller.wake} cuts a wait short.
 *
 * @module
 */

import { isThenable } from '../../reactor/deferred.js';
import type { IDelayedCall, IReactorTime } from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import type { BodyChunk } from './async-body.js';
import { AppProtocolError } from './errors.js';

/** What the puller feeds (the request's driver). */
export interface PullTarget {
  /** Whether a chunk may be pulled now (the exchange is on, the client keeps up, no yield is due). */
  canPull(): boolean;
  /** A non-empty chunk to write; the target handles a failure to write it. */
  pulled(chunk: BodyChunk): void;
  /** The iteration ended. */
  pullDone(): void;
  /** The iteration threw or rejected, or yielded something that is not a chunk. */
  pullFailed(error: unknown): void;
}

/** Whether `value` is a chunk: a string or bytes. */
export function isChunk(value: unknown): value is BodyChunk {
  return typeof value === 'string' || value instanceof Uint8Array;
}

/** What `value` is, for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object'
    ? `an object (${value.constructor?.name ?? 'Object'})`
    : typeof value;
}

/** Calls `fn()`, logging a throw or a rejection (cleanup must not fail the exchange). */
export function cleanup(fn: () => unknown, why: string): void {
  try {
    const r = fn();
    if (isThenable(r)) r.then(undefined, (e: unknown) => err(e, why));
  } catch (e) {
    err(e, why);
  }
}

/** Pulls an app's iterator for its driver (see the module documentation). */
export class BodyPuller {
  readonly #target: PullTarget;
  readonly #iterator: Iterator<unknown> | AsyncIterator<unknown>;
  readonly #async: boolean;
  readonly #clock: IReactorTime;
  readonly #initial: number;
  readonly #max: number;
  readonly #onNext: (result: IteratorResult<unknown>) => void;
  readonly #onNextError: (reason: unknown) => void;

  /** The next back-off delay, in ms. */
  #delay: number;
  #timer: IDelayedCall | null = null;
  #pumping = false;
  /** An async `next()` is pending. */
  #awaiting = false;
  /** The iterator ended by itself (done, or threw): it gets no `return()`. */
  #finished = false;
  /** Inside a sync `next()` (a generator cannot be returned while it runs). */
  #inNext = false;
  #returnAfterNext = false;
  #closed = false;

  /**
   * @param async - `iterator` is an async iterator.
   * @param clock - times the back-off.
   * @param initial - the first back-off delay, ms.
   * @param max - the longest back-off delay, ms.
   */
  constructor(
    target: PullTarget,
    iterator: Iterator<unknown> | AsyncIterator<unknown>,
    async: boolean,
    clock: IReactorTime,
    initial: number,
    max: number,
  ) {
    this.#target = target;
    this.#iterator = iterator;
    this.#async = async;
    this.#clock = clock;
    this.#initial = initial;
    this.#max = max;
    this.#delay = initial;
    this.#onNext = (result) => this.#nextSettled(result);
    this.#onNextError = (reason) => this.#nextFailed(reason);
  }

  /** Whether the puller waits out a back-off. */
  get backingOff(): boolean {
    return this.#timer !== null;
  }

  /** Pulls while the target can take chunks (one async `next()` at a time). */
  pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#closed && !this.#awaiting && this.#timer === null && this.#target.canPull()) {
        if (this.#async) {
          this.#awaiting = true;
          let next: unknown;
          try {
            next = this.#iterator.next();
          } catch (e) {
            this.#nextFailed(e);
            return;
          }
          const settled = next instanceof Promise ? next : Promise.resolve(next);
          (settled as Promise<IteratorResult<unknown>>).then(this.#onNext, this.#onNextError);
          return;
        }
        let result: IteratorResult<unknown>;
        this.#inNext = true;
        try {
          result = (this.#iterator as Iterator<unknown>).next();
        } catch (e) {
          this.#inNext = false;
          this.#nextFailed(e);
          return;
        }
        this.#inNext = false;
        if (this.#closed) {
          // Closed from inside that next(): the generator can be returned now.
          if (this.#returnAfterNext) this.#return();
          return;
        }
        if (!this.#take(result)) return;
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Cuts a back-off short: pulls now (the app's async body has something). */
  wake(): void {
    const timer = this.#timer;
    if (timer === null) return;
    this.#timer = null;
    if (timer.active()) timer.cancel();
    this.pump();
  }

  /** Stops: no more pulls, no timer; an iterator left before its end gets `return()`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const timer = this.#timer;
    this.#timer = null;
    if (timer?.active()) timer.cancel();
    if (this.#finished) return;
    if (this.#inNext) this.#returnAfterNext = true;
    else this.#return();
  }

  #return(): void {
    this.#finished = true;
    const iterator = this.#iterator;
    if (typeof iterator.return === 'function') {
      const ret = iterator.return as () => unknown;
      cleanup(() => ret.call(iterator), 'Unhandled error in the app body iterator return()');
    }
  }

  #nextSettled(result: IteratorResult<unknown>): void {
    this.#awaiting = false;
    if (this.#closed) return;
    if (this.#take(result)) this.pump();
  }

  #nextFailed(reason: unknown): void {
    this.#awaiting = false;
    this.#finished = true;
    this.#target.pullFailed(reason);
  }

  /** One iteration result; returns whether to pull on at once. */
  #take(result: IteratorResult<unknown>): boolean {
    if (result === null || typeof result !== 'object') {
      this.#finished = true;
      this.#target.pullFailed(
        new AppProtocolError(`the body's iterator returned ${describe(result)}`),
      );
      return false;
    }
    if (result.done === true) {
      this.#finished = true;
      this.#target.pullDone();
      return false;
    }
    const chunk = result.value;
    if (!isChunk(chunk)) {
      this.#target.pullFailed(
        new AppProtocolError(`the body yielded ${describe(chunk)}: chunks are strings or bytes`),
      );
      return false;
    }
    if (chunk.length === 0) {
      // "Nothing yet": wait before asking again, longer each time.
      const delay = this.#delay;
      this.#delay = Math.min(delay * 2, this.#max);
      this.#timer = this.#clock.callLater(delay / 1000, BodyPuller.#waited, this);
      return false;
    }
    this.#delay = this.#initial;
    this.#target.pulled(chunk);
    return !this.#closed;
  }

  static #waited(puller: BodyPuller): void {
    puller.#timer = null;
    puller.pump();
  }
}
