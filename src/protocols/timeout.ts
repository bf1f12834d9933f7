/**
 * Idle timeouts for connections, two ways:
 *
 * - {@link ProtocolTimeout}: a helper object a protocol *holds* (Twisted's
 *   `TimeoutMixin`, composed instead of mixed in): `setTimeout`,
 *   `resetTimeout`, `cancelTimeout`, and a `timeoutConnection` hook.
 * - {@link TimeoutFactory} / {@link TimeoutProtocol}: a wrapping factory that
 *   drops connections that saw no data in either direction for N seconds,
 *   without touching the protocol (Twisted's `policies.TimeoutFactory`).
 *
 * Both keep one {@link IDelayedCall} per connection and `reset()` it on
 * activity, rather than cancelling and re-creating timers: moving a call
 * later is cheap (it only records the new time).
 *
 * @module
 */

import { InvalidArgumentError } from '../reactor/errors.js';
import type { Failure } from '../reactor/failure.js';
import type {
  IAddress,
  IDelayedCall,
  IProtocol,
  IProtocolFactory,
  IReactorTime,
  ITransport,
} from '../reactor/interfaces.js';
import { reactor } from '../reactor/reactor.js';
import { ProtocolWrapper, WrappingFactory } from './wrapping.js';

/** A timeout period in seconds, or `null` for none. */
export type TimeoutPeriod = number | null;

function checkPeriod(period: TimeoutPeriod, what: string): TimeoutPeriod {
  if (period === null) return null;
  if (typeof period !== 'number' || !Number.isFinite(period) || period < 0) {
    throw new InvalidArgumentError(
      `${what} must be a non-negative number of seconds or null, not ${String(period)}`,
    );
  }
  return period;
}

/** Whatever holds a {@link ProtocolTimeout}: a protocol, whose transport it closes by default. */
export interface TimeoutOwner {
  readonly transport: ITransport;
}

/** Options of {@link ProtocolTimeout}. */
export interface ProtocolTimeoutOptions {
  /** Where the timer runs (default: the default `reactor`; tests pass a `Clock`). */
  clock?: IReactorTime;
  /**
   * Called when the timeout expires, instead of the default action. Called
   * with no `this`; bind it or use an arrow function.
   */
  onTimeout?: () => void;
  /**
   * The default action when no `onTimeout` is given: `'lose'`
   * (`transport.loseConnection()`, Twisted's default: buffered data is still
   * sent) or `'abort'` (`transport.abortConnection()`: a peer that does not
   * read cannot hold the connection open). Default `'lose'`.
   */
  action?: 'lose' | 'abort';
  /** A period to start with, as by `setTimeout(timeout)` (default `null`: none). */
  timeout?: TimeoutPeriod;
}

/**
 * One idle timer for one connection (Twisted's `TimeoutMixin`, as a helper
 * object a protocol holds rather than a mixin):
 *
 * ```ts
 * class Session extends LineReceiver {
 *   readonly idle = new ProtocolTimeout(this, { clock });
 *   connectionMade() { this.idle.setTimeout(60); }
 *   lineReceived(line: Buffer) { this.idle.resetTimeout(); … }
 *   connectionLost() { this.idle.cancelTimeout(); }
 * }
 * ```
 *
 * While a period is set and the timer has not fired, {@link resetTimeout}
 * restarts the count-down. When it expires, {@link timeoutConnection} runs
 * once: `onTimeout` if given, else the owner's transport is closed
 * (`loseConnection`, or `abortConnection` with `action: 'abort'`). After
 * that the timer is spent: `resetTimeout` does nothing until `setTimeout`
 * arms it again. The owner should `cancelTimeout()` in `connectionLost`, or
 * the timer fires (harmlessly, on a closed transport) later.
 */
export class ProtocolTimeout {
  /** Where the timer runs. */
  readonly clock: IReactorTime;

  readonly #owner: TimeoutOwner | null;
  readonly #onTimeout: (() => void) | null;
  readonly #abort: boolean;
  #period: TimeoutPeriod = null;
  #call: IDelayedCall | null = null;

  /**
   * A timeout for `owner`'s connection, not armed unless `options.timeout`
   * is given.
   * @throws InvalidArgumentError if `owner` is `null` and no `onTimeout` is
   *   given, or for a bad `timeout` or `action`.
   */
  constructor(owner: TimeoutOwner | null, options: ProtocolTimeoutOptions = {}) {
    if (owner === null && options.onTimeout === undefined) {
      throw new InvalidArgumentError('ProtocolTimeout needs an owner or an onTimeout callback');
    }
    const action = options.action ?? 'lose';
    if (action !== 'lose' && action !== 'abort') {
      throw new InvalidArgumentError(`action must be 'lose' or 'abort', not ${String(action)}`);
    }
    this.#owner = owner;
    this.#onTimeout = options.onTimeout ?? null;
    this.#abort = action === 'abort';
    this.clock = options.clock ?? reactor;
    const initial = checkPeriod(options.timeout ?? null, 'timeout');
    if (initial !== null) this.setTimeout(initial);
  }

  /** The current period in seconds, or `null` (Twisted's `timeOut`). */
  get timeout(): TimeoutPeriod {
    return this.#period;
  }

  /** `true` while the timer is armed (a period is set and it has not fired). */
  get pending(): boolean {
    return this.#call !== null;
  }

  /**
   * Changes the period and restarts the count-down from now with it; `null`
   * disarms the timer. Arms a new timer if none is pending (also after it
   * fired). Returns the previous period.
   * @throws InvalidArgumentError if `period` is negative, not finite, or not a number.
   */
  setTimeout(period: TimeoutPeriod): TimeoutPeriod {
    checkPeriod(period, 'setTimeout() period');
    const previous = this.#period;
    this.#period = period;
    const call = this.#call;
    if (call !== null) {
      if (period === null) {
        this.#call = null;
        call.cancel();
      } else {
        call.reset(period);
      }
    } else if (period !== null) {
      this.#call = this.clock.callLater(period, ProtocolTimeout.#expired, this);
    }
    return previous;
  }

  /**
   * Restarts the count-down with the current period (call it on activity).
   * Does nothing if no period is set or the timer has already fired.
   */
  resetTimeout(): void {
    const call = this.#call;
    if (call !== null && this.#period !== null) call.reset(this.#period);
  }

  /** Disarms the timer and clears the period. Idempotent. */
  cancelTimeout(): void {
    this.#period = null;
    const call = this.#call;
    if (call !== null) {
      this.#call = null;
      call.cancel();
    }
  }

  /**
   * The timeout expired (called once per arming). Runs `onTimeout`, or closes
   * the owner's transport as `action` says. Subclasses may override it.
   */
  timeoutConnection(): void {
    if (this.#onTimeout !== null) {
      this.#onTimeout();
      return;
    }
    const transport = this.#owner!.transport;
    if (this.#abort) transport.abortConnection();
    else transport.loseConnection();
  }

  static #expired(timeout: ProtocolTimeout): void {
    timeout.#call = null;
    timeout.timeoutConnection();
  }
}

// ====================================================================== TimeoutFactory

/**
 * Wraps a protocol and closes its connection after `timeoutPeriod` seconds
 * without traffic (Twisted's `TimeoutProtocol`). The count-down starts at
 * `makeConnection` and restarts on every `dataReceived` and on every
 * `write`/`writeSequence` of the wrapped protocol; it stops at
 * `connectionLost` or `detach`. On expiry {@link TimeoutProtocol.timeoutFunc}
 * runs: `loseConnection()` by default.
 */
export class TimeoutProtocol<P extends IProtocol = IProtocol> extends ProtocolWrapper<P> {
  /** The timer (a {@link ProtocolTimeout} whose action is {@link TimeoutProtocol.timeoutFunc}). */
  readonly timer: ProtocolTimeout;
  #initialPeriod: TimeoutPeriod;

  /**
   * @param timeoutPeriod - seconds of silence allowed, or `null` for none
   *   (then `setTimeout` can arm it later).
   * @param clock - where the timer runs (default: the `reactor`).
   * @throws InvalidArgumentError for a bad period.
   */
  constructor(
    factory: TimeoutFactory,
    wrappedProtocol: P,
    timeoutPeriod: TimeoutPeriod,
    clock: IReactorTime = reactor,
  ) {
    super(factory, wrappedProtocol);
    this.#initialPeriod = checkPeriod(timeoutPeriod, 'timeoutPeriod');
    this.timer = new ProtocolTimeout(this, { clock, onTimeout: () => this.timeoutFunc() });
  }

  /** The current period in seconds, or `null`. */
  get timeoutPeriod(): TimeoutPeriod {
    return this.timer.timeout;
  }

  /** Arms the timer with the period given at construction, then connects. */
  override makeConnection(transport: ITransport): void {
    if (this.#initialPeriod !== null) this.timer.setTimeout(this.#initialPeriod);
    super.makeConnection(transport);
  }

  /**
   * Restarts the count-down from now with `period` (`null` disarms it), as
   * Twisted's `TimeoutProtocol.setTimeout`. Before `makeConnection` it only
   * changes the period the connection will start with.
   * @throws InvalidArgumentError for a bad period.
   */
  setTimeout(period: TimeoutPeriod): void {
    if (!this.connected) {
      this.#initialPeriod = checkPeriod(period, 'setTimeout() period');
      return;
    }
    this.timer.setTimeout(period);
  }

  /** Disarms the timer. Idempotent. */
  cancelTimeout(): void {
    this.#initialPeriod = null;
    this.timer.cancelTimeout();
  }

  /** Restarts the count-down (done on all traffic already). */
  resetTimeout(): void {
    this.timer.resetTimeout();
  }

  /** The connection was idle too long: `loseConnection()`. Override for something else. */
  timeoutFunc(): void {
    this.loseConnection();
  }

  override write(data: Uint8Array | string): void {
    this.timer.resetTimeout();
    super.write(data);
  }

  override writeSequence(data: ReadonlyArray<Uint8Array | string>): void {
    this.timer.resetTimeout();
    super.writeSequence(data);
  }

  override dataReceived(data: Buffer): void {
    this.timer.resetTimeout();
    super.dataReceived(data);
  }

  override connectionLost(reason: Failure): void {
    this.timer.cancelTimeout();
    super.connectionLost(reason);
  }

  override detach(): ReturnType<ProtocolWrapper['detach']> {
    const detached = super.detach();
    this.timer.cancelTimeout();
    return detached;
  }
}

/** Options of {@link TimeoutFactory}. */
export interface TimeoutFactoryOptions {
  /** Seconds of silence before a connection is closed (default 1800, as Twisted). */
  timeoutPeriod?: number;
  /** Where the timers run (default: the `reactor`; tests pass a `Clock`). */
  clock?: IReactorTime;
}

/**
 * Wraps a factory so that its connections are closed after
 * `timeoutPeriod` seconds without data in either direction (Twisted's
 * `policies.TimeoutFactory`). See {@link TimeoutProtocol}.
 */
export class TimeoutFactory<F extends IProtocolFactory = IProtocolFactory> extends WrappingFactory<
  F,
  TimeoutProtocol
> {
  /** The period given to each new connection, in seconds. */
  readonly timeoutPeriod: number;
  /** Where the timers run. */
  readonly clock: IReactorTime;

  /** @throws InvalidArgumentError for a bad `timeoutPeriod`. */
  constructor(wrappedFactory: F, options: TimeoutFactoryOptions = {}) {
    super(wrappedFactory);
    this.timeoutPeriod = checkPeriod(options.timeoutPeriod ?? 30 * 60, 'timeoutPeriod')!;
    this.clock = options.clock ?? reactor;
  }

  protected override wrapProtocol(wrapped: IProtocol, _addr: IAddress): TimeoutProtocol {
    return new TimeoutProtocol(this, wrapped, this.timeoutPeriod, this.clock);
  }
}
