/**
 * `Deferred<T>`: a result that is not there yet, with Twisted's exact semantics.
 *
 * - Callbacks and errbacks form one chain. When the Deferred fires, each link
 *   runs in turn, synchronously, with the result of the link before; a success
 *   goes to the next callback, a {@link Failure} to the next errback. An errback
 *   that returns normally turns the chain back to success; a callback that
 *   throws turns it to failure.
 * - Adding a link to a Deferred that has already fired runs the link at once.
 * - A link that returns a Deferred (or any thenable) pauses the chain until
 *   that one fires; the chain then resumes with its result. Already-fired
 *   Deferreds are taken inline, so chains of any depth run in constant stack
 *   (the loop with an explicit chain stack of Twisted 24's `_runCallbacks`).
 * - A Deferred fires once: `callback`/`errback` a second time throws
 *   {@link AlreadyCalledError}, except the one call that follows a `cancel()`
 *   without a canceller, which is silently ignored.
 * - A Deferred is `PromiseLike<T>`: `await d` works. `then` observes the result
 *   at the current end of the chain without consuming it (every `then` sees
 *   the same value, as Promise/A+ asks), and runs its handlers asynchronously.
 * - A Deferred collected while its chain ends in a Failure that no errback and
 *   no `then` observed logs "Unhandled error in Deferred".
 *
 * @module
 */

import {
  AlreadyCalledError,
  CancelledError,
  InvalidArgumentError,
  TimeoutError,
} from './errors.js';
import { Failure } from './failure.js';
import type { IReactorTime } from './interfaces.js';
import { err } from './log.js';

/** A link's function, erased: links are stored untyped, typing lives in the add* signatures. */
type AnyFn = (result: unknown, ...args: unknown[]) => unknown;

/** Marks the link that a paused outer Deferred appends to the Deferred it waits on. */
const CONTINUE: AnyFn = () => undefined;

interface Link {
  readonly callback: AnyFn | null;
  readonly callbackArgs: readonly unknown[];
  readonly errback: AnyFn | null;
  readonly errbackArgs: readonly unknown[];
}

const NO_ARGS: readonly unknown[] = [];

/** Holds the Failure a Deferred's chain ended in, for the collector to report. */
interface FailureRecord {
  failure: Failure | null;
}

const unhandled = new FinalizationRegistry<FailureRecord>((record) => {
  if (record.failure !== null && !observedFailures.has(record.failure)) {
    err(record.failure, 'Unhandled error in Deferred');
  }
});

/** Failures a `then`/`asPromise` observer passed to a Promise: that Promise now reports them. */
const observedFailures = new WeakSet<Failure>();

/** `true` for any object or function with a callable `then` (a Promise, a Deferred). */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** The function a Deferred calls on `cancel()`; it may fire the Deferred itself. */
export type Canceller<T> = (deferred: Deferred<T>) => void;

/**
 * A result that will be available later, delivered through a chain of
 * callbacks and errbacks. See the module documentation for the exact rules.
 *
 * @typeParam T - the type the next callback added will receive.
 */
export class Deferred<T = unknown> implements PromiseLike<T> {
  #links: Link[] = [];
  #next = 0;
  #called = false;
  #paused = 0;
  #running = false;
  #suppressAlreadyCalled = false;
  #result: unknown = undefined;
  // Stored erased: a typed field would make Deferred<T> invariant in T.
  #canceller: ((deferred: never) => void) | undefined;
  #record: FailureRecord | null = null;

  /**
   * @param canceller - called by {@link Deferred.cancel} while the Deferred has
   * not fired; it should stop the work and may fire the Deferred (if it does
   * not, the Deferred errbacks with {@link CancelledError}).
   */
  constructor(canceller?: Canceller<T>) {
    this.#canceller = canceller as ((deferred: never) => void) | undefined;
  }

  /** `true` once `callback` or `errback` has been called. */
  get called(): boolean {
    return this.#called;
  }

  /** How many times the chain is paused (by `pause()` or by waiting on another Deferred). */
  get paused(): number {
    return this.#paused;
  }

  /**
   * The current result of the chain: meaningful once `called`; a `Failure`
   * when the chain is failing, a `Deferred` while waiting on one.
   */
  get result(): unknown {
    return this.#result;
  }

  // ------------------------------------------------------------------ adding links

  /**
   * Adds a callback and an errback as one link: exactly one of them runs,
   * depending on whether the chain is succeeding or failing at this point.
   * Runs at once if the Deferred has fired (and is not paused).
   */
  addCallbacks<R1, R2 = never, A extends unknown[] = [], B extends unknown[] = []>(
    callback: ((result: T, ...args: A) => R1) | null,
    errback?: ((failure: Failure, ...args: B) => R2) | null,
    callbackArgs?: A,
    errbackArgs?: B,
  ): Deferred<Awaited<R1> | Awaited<R2>> {
    this.#links.push({
      callback: (callback as AnyFn | null) ?? null,
      callbackArgs: callbackArgs ?? NO_ARGS,
      errback: (errback as AnyFn | null | undefined) ?? null,
      errbackArgs: errbackArgs ?? NO_ARGS,
    });
    if (this.#called) this.#runCallbacks();
    return this as unknown as Deferred<Awaited<R1> | Awaited<R2>>;
  }

  /** Adds a callback (extra arguments follow the result). Failures pass by it. */
  addCallback<R, A extends unknown[] = []>(
    callback: (result: T, ...args: A) => R,
    ...args: A
  ): Deferred<Awaited<R>> {
    this.#links.push({
      callback: callback as AnyFn,
      callbackArgs: args.length === 0 ? NO_ARGS : args,
      errback: null,
      errbackArgs: NO_ARGS,
    });
    if (this.#called) this.#runCallbacks();
    return this as unknown as Deferred<Awaited<R>>;
  }

  /** Adds an errback (extra arguments follow the failure). Successes pass by it. */
  addErrback<R, A extends unknown[] = []>(
    errback: (failure: Failure, ...args: A) => R,
    ...args: A
  ): Deferred<T | Awaited<R>> {
    this.#links.push({
      callback: null,
      callbackArgs: NO_ARGS,
      errback: errback as AnyFn,
      errbackArgs: args.length === 0 ? NO_ARGS : args,
    });
    if (this.#called) this.#runCallbacks();
    return this as unknown as Deferred<T | Awaited<R>>;
  }

  /** Adds the same function as callback and errback. */
  addBoth<R, A extends unknown[] = []>(
    fn: (result: T | Failure, ...args: A) => R,
    ...args: A
  ): Deferred<Awaited<R>> {
    const extra = args.length === 0 ? NO_ARGS : args;
    this.#links.push({
      callback: fn as AnyFn,
      callbackArgs: extra,
      errback: fn as AnyFn,
      errbackArgs: extra,
    });
    if (this.#called) this.#runCallbacks();
    return this as unknown as Deferred<Awaited<R>>;
  }

  /**
   * Makes `other` fire with this chain's result at this point; this chain
   * then continues with `undefined`. Returns this Deferred.
   */
  chainDeferred(other: Deferred<T>): Deferred<void> {
    return this.addCallbacks(
      (result) => other.callback(result),
      (failure) => other.errback(failure),
    );
  }

  // ------------------------------------------------------------------ firing

  /**
   * Fires the chain with a success.
   * @throws AlreadyCalledError if already fired (but see `cancel`).
   * @throws InvalidArgumentError if `result` is a Deferred (chain it instead).
   */
  callback(result: T): void {
    if (result instanceof Deferred) {
      throw new InvalidArgumentError('Deferred.callback() cannot take a Deferred; chain it');
    }
    this.#start(result);
  }

  /**
   * Fires the chain with a failure. `error` may be a Failure, an Error or any
   * value (wrapped in a Failure); with none, a generic Error.
   * @throws AlreadyCalledError if already fired (but see `cancel`).
   */
  errback(error?: unknown): void {
    this.#start(
      Failure.from(error === undefined ? new Error('errback() called without a reason') : error),
    );
  }

  #start(result: unknown): void {
    if (this.#called) {
      if (this.#suppressAlreadyCalled) {
        this.#suppressAlreadyCalled = false;
        return;
      }
      throw new AlreadyCalledError();
    }
    this.#called = true;
    this.#result = result;
    this.#runCallbacks();
  }

  /** Stops running links until a matching `unpause()`. Pauses nest. */
  pause(): void {
    this.#paused++;
  }

  /** Undoes one `pause()`; when none is left and the Deferred has fired, runs the waiting links. */
  unpause(): void {
    if (this.#paused === 0) return;
    this.#paused--;
    if (this.#paused === 0 && this.#called) this.#runCallbacks();
  }

  /**
   * Cancels the work behind an unfired Deferred: calls the canceller; if it
   * (or the absent canceller) leaves the Deferred unfired, errbacks with
   * {@link CancelledError}. Without a canceller, one later `callback`/`errback`
   * (from the work that was cancelled) is silently ignored. On a fired
   * Deferred that waits on another, cancels that one. Otherwise does nothing.
   */
  cancel(): void {
    if (!this.#called) {
      const canceller = this.#canceller as Canceller<T> | undefined;
      if (canceller) {
        canceller(this);
      } else {
        this.#suppressAlreadyCalled = true;
      }
      if (!this.#called) this.errback(new Failure(new CancelledError()));
    } else if (this.#result instanceof Deferred) {
      this.#result.cancel();
    }
  }

  /**
   * Fails with {@link TimeoutError} if not fired within `seconds` on `clock`
   * (by cancelling, so the canceller runs). `onTimeoutCancel(result, seconds)`
   * replaces the conversion of the resulting `CancelledError` when given.
   */
  addTimeout(
    seconds: number,
    clock: IReactorTime,
    onTimeoutCancel?: (result: T | Failure, seconds: number) => unknown,
  ): Deferred<T> {
    let timedOut = false;
    const delayedCall = clock.callLater(seconds, () => {
      timedOut = true;
      this.cancel();
    });
    this.addBoth((result) => {
      if (!timedOut) return result;
      if (onTimeoutCancel) return onTimeoutCancel(result as T | Failure, seconds);
      if (result instanceof Failure) {
        result.trap(CancelledError);
        throw new TimeoutError(`Deferred timed out after ${seconds} seconds`);
      }
      return result;
    });
    this.addBoth((result) => {
      if (delayedCall.active()) delayedCall.cancel();
      return result;
    });
    return this;
  }

  // ------------------------------------------------------------------ the loop

  #runCallbacks(): void {
    if (this.#running) return;
    // An explicit stack of Deferreds instead of recursion: when a chain that
    // waited on `current` resumes, it is pushed and run in this same loop.
    const chain: Deferred<unknown>[] = [this as Deferred<unknown>];
    while (chain.length > 0) {
      const current = chain[chain.length - 1];
      if (current.#paused > 0) return;
      let finished = true;
      const links = current.#links;
      while (current.#next < links.length) {
        const link = links[current.#next++];
        const failing = current.#result instanceof Failure;
        const fn = failing ? link.errback : link.callback;
        if (fn === null) continue;
        if (fn === CONTINUE) {
          const waiting = (failing ? link.errbackArgs : link.callbackArgs)[0] as Deferred<unknown>;
          waiting.#result = current.#result;
          current.#result = undefined;
          waiting.#paused--;
          chain.push(waiting);
          finished = false;
          break;
        }
        current.#running = true;
        try {
          const args = failing ? link.errbackArgs : link.callbackArgs;
          current.#result = args.length === 0 ? fn(current.#result) : fn(current.#result, ...args);
        } catch (error) {
          current.#result = Failure.from(error);
        } finally {
          current.#running = false;
        }
        let inner = current.#result;
        if (inner === current) {
          current.#result = new Failure(
            new InvalidArgumentError('a callback returned the Deferred it was added to'),
          );
          continue;
        }
        if (!(inner instanceof Deferred) && isThenable(inner)) {
          inner = Deferred.fromPromise(inner);
          current.#result = inner;
        }
        if (inner instanceof Deferred) {
          const innerResult: unknown = inner.#result;
          if (!inner.#called || innerResult instanceof Deferred || inner.#paused > 0) {
            // Wait for it: pause this chain and let `inner` resume it.
            current.#paused++;
            inner.#links.push({
              callback: CONTINUE,
              callbackArgs: [current],
              errback: CONTINUE,
              errbackArgs: [current],
            });
            break;
          }
          // Already fired: take its result inline.
          inner.#result = undefined;
          if (inner.#record !== null) inner.#record.failure = null;
          current.#result = innerResult;
        }
      }
      if (finished) {
        if (current.#next === links.length) {
          links.length = 0;
          current.#next = 0;
        }
        current.#noteFailure();
        chain.pop();
      }
    }
  }

  /** Keeps the collector informed of whether this chain ends in a failure. */
  #noteFailure(): void {
    const result = this.#result;
    if (result instanceof Failure) {
      if (this.#record === null) {
        this.#record = { failure: result };
        unhandled.register(this, this.#record);
      } else {
        this.#record.failure = result;
      }
    } else if (this.#record !== null) {
      this.#record.failure = null;
    }
  }

  // ------------------------------------------------------------------ promises

  /**
   * Observes the result at the current end of the chain, Promise-style. The
   * handlers run asynchronously; the chain's result is left as it was (a
   * failure seen here is reported by the returned Promise, not the collector).
   */
  then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.asPromise().then(onFulfilled, onRejected);
  }

  /**
   * A Promise of the result at the current end of the chain: it resolves with
   * the success value or rejects with the failure's error. The chain continues
   * with the same result.
   */
  asPromise(): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.addCallbacks(
        (value) => {
          resolve(value);
          return value;
        },
        (failure) => {
          observedFailures.add(failure);
          reject(failure.value);
          return failure;
        },
      );
    });
  }

  /**
   * A Deferred that fires with `promise`'s outcome (rejections become a
   * Failure). Cancelling it fires it with CancelledError; the Promise's later
   * outcome is then ignored.
   */
  static fromPromise<T>(promise: PromiseLike<T>): Deferred<T> {
    const d = new Deferred<T>();
    promise.then(
      (value) => {
        if (!d.#called || d.#suppressAlreadyCalled) d.#start(value);
      },
      (reason: unknown) => {
        if (!d.#called || d.#suppressAlreadyCalled) d.#start(Failure.from(reason));
      },
    );
    return d;
  }

  toString(): string {
    if (!this.#called) return '<Deferred>';
    const result = this.#result;
    if (result instanceof Deferred) return '<Deferred waiting on Deferred>';
    return `<Deferred current result: ${String(result)}>`;
  }
}

// ====================================================================== helpers

/** A Deferred that has already succeeded with `value`. */
export function succeed<T>(value: T): Deferred<T> {
  const d = new Deferred<T>();
  d.callback(value);
  return d;
}

/** A Deferred that has already failed with `error` (wrapped in a Failure). */
export function fail<T = never>(error?: unknown): Deferred<T> {
  const d = new Deferred<T>();
  d.errback(error);
  return d;
}

/**
 * Calls `fn(...args)` and returns its outcome as a Deferred: a Deferred is
 * returned as it is, a thenable is converted, a throw becomes a failed
 * Deferred, any other value a succeeded one.
 */
export function maybeDeferred<R, A extends unknown[]>(
  fn: (...args: A) => R,
  ...args: A
): Deferred<Awaited<R>> {
  let result: unknown;
  try {
    result = fn(...args);
  } catch (error) {
    return fail(error);
  }
  if (result instanceof Deferred) return result as Deferred<Awaited<R>>;
  if (isThenable(result)) return Deferred.fromPromise(result) as Deferred<Awaited<R>>;
  return succeed(result as Awaited<R>);
}

/**
 * Wraps the result of an `async` function (a Promise), any thenable, or a
 * Deferred in a Deferred (a Deferred is returned as it is).
 * @throws InvalidArgumentError for anything else.
 */
export function ensureDeferred<T>(value: PromiseLike<T> | Deferred<T>): Deferred<T> {
  if (value instanceof Deferred) return value;
  if (isThenable(value)) return Deferred.fromPromise(value);
  throw new InvalidArgumentError(
    `ensureDeferred() takes a Promise, thenable or Deferred, not ${typeof value}`,
  );
}
