/**
 * `Clock`: a deterministic {@link IReactorTime} for tests (Twisted's
 * `twisted.internet.task.Clock`). Time starts at 0 and moves only when the
 * test calls {@link Clock.advance} or {@link Clock.pump}.
 *
 * @module
 */

import type { IReactorTime } from './interfaces.js';
import { checkDelay, type DelayedCall, TimerQueue } from './timer-queue.js';

/**
 * Simulated time. Delayed calls behave exactly as on the reactor (the same
 * {@link TimerQueue}): same-time calls run in scheduling order, an exception
 * from a call is logged (with `err()`, so a test can observe it through
 * `addObserver`) and not thrown out of `advance`, and a call scheduled while
 * `advance` runs calls waits for the next `advance`, even with a delay of 0
 * (this is where `Clock` differs from Twisted's, which would run it at once).
 */
export class Clock implements IReactorTime {
  #now = 0;
  readonly #queue = new TimerQueue(() => this.#now);

  /** The simulated time in seconds: 0, plus every amount advanced. */
  seconds(): number {
    return this.#now;
  }

  /**
   * Schedules `fn(...args)` at `seconds() + delay`. It runs during the first
   * `advance` whose new time reaches it (`advance(0)` for a delay of 0).
   * @throws InvalidArgumentError if `delay` is negative or not a finite number.
   */
  callLater<A extends unknown[]>(
    delay: number,
    fn: (...args: A) => unknown,
    ...args: A
  ): DelayedCall {
    return this.#queue.schedule(delay, fn, args);
  }

  /** The active calls, earliest first (same-time calls in the order they will run). */
  getDelayedCalls(): DelayedCall[] {
    return this.#queue.getDelayedCalls(true);
  }

  /**
   * Moves time forward by `amount` seconds, then runs every call now due, in
   * order, once each. Calls scheduled by those calls wait for the next
   * `advance` even if already due.
   * @throws InvalidArgumentError if `amount` is negative or not a finite number.
   */
  advance(amount: number): void {
    checkDelay(amount, 'advance() amount');
    this.#now += amount;
    this.#queue.runUntil(this.#now);
  }

  /**
   * Advances by each amount of `timings` in turn (`advance(t)` for each `t`).
   * @throws InvalidArgumentError on the first bad amount; earlier ones have been applied.
   */
  pump(timings: Iterable<number>): void {
    for (const amount of timings) this.advance(amount);
  }
}
