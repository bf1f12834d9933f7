/**
 * {@link ChannelTimer}: the one delayed call of an HTTP connection, as
 * Twisted's `TimeoutMixin` keeps one: it is pointed at what the channel is
 * waiting for (its {@link ChannelTimer.kind}) and moved with `reset()`
 * rather than cancelled and made again; when it fires, the channel is told
 * which wait ran out.
 *
 * @module
 */

import type { IDelayedCall, IReactorTime } from '../../reactor/interfaces.js';

/** Nothing is timed. */
export const T_NONE = 0;
/** Between requests, nothing received (`idleTimeout`): close silently. */
export const T_IDLE = 1;
/** A request head not complete (`headerTimeout`): 408. */
export const T_HEADERS = 2;
/** Between pieces of a request body (`bodyTimeout`): 408. */
export const T_BODY = 3;
/** The channel is closing (`closeTimeout`): abort. */
export const T_CLOSE = 4;
/** The request in progress lost its body: it has `closeTimeout` to finish, then abort. */
export const T_ANSWER = 5;

/** Who is told when the timer runs out (the channel). */
export interface TimerOwner {
  /** The wait `kind` (a `T_*` constant) ran out; the timer's kind is `T_NONE` again. */
  timedOut(kind: number): void;
}

/** One delayed call, pointed at one kind of wait at a time. */
export class ChannelTimer {
  readonly #reactor: IReactorTime;
  readonly #owner: TimerOwner;
  #call: IDelayedCall | null = null;
  /**
   * What the timer waits for (a `T_*` constant). Setting it to another
   * kind (or `T_NONE`) without {@link arm} leaves the call running, and its
   * firing then ignored for `T_NONE`: cheaper than cancelling a call that
   * is likely to be re-armed soon.
   */
  kind = T_NONE;

  constructor(reactor: IReactorTime, owner: TimerOwner) {
    this.#reactor = reactor;
    this.#owner = owner;
  }

  /** Points the timer at `kind`, `after` seconds from now (an infinite time times nothing). */
  arm(kind: number, after: number): void {
    if (after === Number.POSITIVE_INFINITY) {
      this.kind = T_NONE;
      return;
    }
    this.kind = kind;
    const call = this.#call;
    if (call?.active()) call.reset(after);
    else this.#call = this.#reactor.callLater(after, ChannelTimer.#fired, this);
  }

  /** Pushes the running wait back to `after` seconds from now. */
  reset(after: number): void {
    const call = this.#call;
    if (call?.active()) call.reset(after);
    else this.arm(this.kind, after);
  }

  /** Stops timing (the delayed call is cancelled). */
  cancel(): void {
    const call = this.#call;
    this.#call = null;
    this.kind = T_NONE;
    if (call?.active()) call.cancel();
  }

  static #fired(timer: ChannelTimer): void {
    const kind = timer.kind;
    timer.kind = T_NONE;
    if (kind !== T_NONE) timer.#owner.timedOut(kind);
  }
}
