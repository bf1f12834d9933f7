/**
 * Waiting on several Deferreds at once: `DeferredList` and `gatherResults`,
 * as in Twisted.
 *
 * @module
 */

import { Deferred } from './deferred.js';
import { FirstError } from './errors.js';
import type { Failure } from './failure.js';

/** One entry of a DeferredList's result: `[true, value]` or `[false, failure]`. */
export type DeferredListEntry<T> = readonly [true, T] | readonly [false, Failure];

/** Options of {@link DeferredList}. */
export interface DeferredListOptions {
  /** Fire with `[value, index]` as soon as one Deferred succeeds. */
  fireOnOneCallback?: boolean;
  /** Fail with {@link FirstError} as soon as one Deferred fails. */
  fireOnOneErrback?: boolean;
  /**
   * Stop each failure here (the sub-Deferred's chain continues with
   * `undefined`), so it is not also reported as unhandled. Default false.
   */
  consumeErrors?: boolean;
}

/**
 * Fires when every Deferred in the list has fired, with a
 * `[success, result]` entry for each, in the order given.
 *
 * With `fireOnOneCallback` it fires instead with `[value, index]` as soon as one
 * succeeds; with `fireOnOneErrback` it fails with a {@link FirstError} as soon
 * as one fails. An empty list fires at once with `[]`. Cancelling it cancels
 * every sub-Deferred that has not fired yet.
 */
export class DeferredList<T = unknown> extends Deferred<DeferredListEntry<T>[] | [T, number]> {
  /** The entries so far (`undefined` where the Deferred has not fired). */
  readonly resultList: (DeferredListEntry<T> | undefined)[];

  #remaining: number;
  readonly #deferreds: readonly Deferred<T>[];

  constructor(deferreds: readonly Deferred<T>[], options: DeferredListOptions = {}) {
    super((self) => {
      for (const d of (self as DeferredList<T>).#deferreds) {
        if (!d.called) d.cancel();
      }
    });
    this.#deferreds = deferreds;
    this.resultList = new Array(deferreds.length).fill(undefined);
    this.#remaining = deferreds.length;
    const { fireOnOneCallback = false, fireOnOneErrback = false, consumeErrors = false } = options;
    if (deferreds.length === 0 && !fireOnOneCallback) {
      this.callback([]);
      return;
    }
    deferreds.forEach((d, index) => {
      d.addCallbacks(
        (value) => {
          this.#settle(index, [true, value]);
          if (fireOnOneCallback && !this.called) this.callback([value, index]);
          else this.#maybeFinish();
          return value;
        },
        (failure) => {
          this.#settle(index, [false, failure]);
          if (fireOnOneErrback && !this.called) this.errback(new FirstError(failure, index));
          else this.#maybeFinish();
          return consumeErrors ? undefined : failure;
        },
      );
    });
  }

  #settle(index: number, entry: DeferredListEntry<T>): void {
    this.resultList[index] = entry;
    this.#remaining--;
  }

  #maybeFinish(): void {
    if (this.#remaining === 0 && !this.called) {
      this.callback(this.resultList as DeferredListEntry<T>[]);
    }
  }
}

/**
 * Fires with the values of every Deferred, in order, once all have
 * succeeded; fails with a {@link FirstError} as soon as one fails (its
 * `subFailure` and `index` say which). Cancelling cancels the pending ones.
 *
 * @param consumeErrors - stop each failure in its sub-Deferred (default false).
 */
export function gatherResults<T>(
  deferreds: readonly Deferred<T>[],
  consumeErrors = false,
): Deferred<T[]> {
  const list = new DeferredList<T>(deferreds, { fireOnOneErrback: true, consumeErrors });
  return list.addCallback((entries) =>
    (entries as DeferredListEntry<T>[]).map((entry) => entry[1] as T),
  );
}
