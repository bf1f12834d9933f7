/**
 * {@link ReconnectingClientFactory}: a client factory that reconnects after a
 * failed attempt or a lost connection, with exponential back-off and jitter,
 * as Twisted's `twisted.internet.protocol.ReconnectingClientFactory`.
 *
 * @module
 */

import { InvalidArgumentError, NotConnectingError } from '../reactor/errors.js';
import type { Failure } from '../reactor/failure.js';
import type { IConnector, IDelayedCall, IProtocol, IReactorTime } from '../reactor/interfaces.js';
import { err, msg } from '../reactor/log.js';
import { reactor } from '../reactor/reactor.js';
import { ClientFactory, type Protocol } from './protocol.js';

/** Options of {@link ReconnectingClientFactory} (each also a public field). */
export interface ReconnectingOptions {
  /** Seconds before the first retry, before growth and jitter (default 1). */
  initialDelay?: number;
  /** The delay is multiplied by this on every retry (default e, 2.718…). */
  factor?: number;
  /**
   * Relative standard deviation of the delay: each delay is drawn from a
   * normal distribution around the computed one, so that many clients do
   * not reconnect in step (default 0.11962656472; 0 disables it).
   */
  jitter?: number;
  /** The computed delay never exceeds this many seconds (before jitter; default 3600). */
  maxDelay?: number;
  /** Give up after this many consecutive retries; `null` (default) never gives up. */
  maxRetries?: number | null;
  /** Where retries are scheduled (default: the `reactor`; tests pass a `Clock`). */
  clock?: IReactorTime;
  /**
   * A uniform random source in [0, 1) for the jitter (default `Math.random`;
   * tests pass a deterministic one).
   */
  random?: () => number;
}

function checkNumber(value: number, what: string, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new InvalidArgumentError(
      `${what} must be a finite number >= ${min}, not ${String(value)}`,
    );
  }
  return value;
}

/**
 * A client factory that reconnects, with exponential back-off, after each
 * failed attempt (`clientConnectionFailed`) and each lost connection
 * (`clientConnectionLost`), until {@link ReconnectingClientFactory.stopTrying}
 * or `maxRetries` consecutive retries:
 *
 * ```ts
 * class Client extends ReconnectingClientFactory<MyProtocol> {
 *   override protocol = MyProtocol;
 *   override buildProtocol(addr: IAddress) {
 *     this.resetDelay(); // connected: start the back-off over next time
 *     return super.buildProtocol(addr);
 *   }
 * }
 * reactor.connectTCP(host, port, new Client());
 * ```
 *
 * Each retry multiplies `delay` by `factor`, caps it at `maxDelay`, then
 * (when `jitter` is not 0) draws it from a normal distribution with that
 * mean and a standard deviation of `delay * jitter` (never below 0), and
 * schedules `connector.connect()` that many seconds later on `clock`. So
 * with the defaults the retries come after about 2.7, 7.4, 20, 55… seconds.
 *
 * As in Twisted, the factory does not reset the back-off by itself when a
 * connection succeeds: call {@link ReconnectingClientFactory.resetDelay}
 * once connected (typically in `buildProtocol` or the protocol's
 * `connectionMade`), or the delays keep growing across reconnections.
 */
export class ReconnectingClientFactory<P extends IProtocol = Protocol> extends ClientFactory<P> {
  /** Cap on the computed delay, in seconds. */
  maxDelay = 3600;
  /** The delay the back-off starts from (and `resetDelay` returns to), in seconds. */
  initialDelay = 1.0;
  /** Growth of the delay per retry (e: Twisted's 2.7182818284590451 is this double). */
  factor = Math.E;
  /** Relative standard deviation of each delay; 0 for none. */
  jitter = 0.11962656472;
  /** The delay of the last scheduled retry (`initialDelay` before any). */
  delay: number;
  /** Retries since the last `resetDelay()`. */
  retries = 0;
  /** Give up after this many consecutive retries, or `null` for never. */
  maxRetries: number | null = null;
  /** `false` after `stopTrying()`: failures and losses are no longer retried. */
  continueTrying = true;
  /** The connector of the last failure or loss (what `retry()` reconnects by default). */
  connector: IConnector | null = null;
  /** Where retries are scheduled. */
  clock: IReactorTime;
  /** Uniform random numbers in [0, 1) for the jitter. */
  random: () => number;

  #call: IDelayedCall | null = null;

  /**
   * @throws InvalidArgumentError for a negative or non-finite delay, a factor
   *   below 1, a negative jitter, or a `maxRetries` that is not a
   *   non-negative integer or `null`.
   */
  constructor(options: ReconnectingOptions = {}) {
    super();
    if (options.initialDelay !== undefined) {
      this.initialDelay = checkNumber(options.initialDelay, 'initialDelay', 0);
    }
    if (options.factor !== undefined) this.factor = checkNumber(options.factor, 'factor', 1);
    if (options.jitter !== undefined) this.jitter = checkNumber(options.jitter, 'jitter', 0);
    if (options.maxDelay !== undefined) {
      this.maxDelay = checkNumber(options.maxDelay, 'maxDelay', 0);
    }
    if (options.maxRetries !== undefined && options.maxRetries !== null) {
      const n = options.maxRetries;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
        throw new InvalidArgumentError(
          `maxRetries must be a non-negative integer or null, not ${String(n)}`,
        );
      }
      this.maxRetries = n;
    }
    this.delay = this.initialDelay;
    this.clock = options.clock ?? reactor;
    this.random = options.random ?? Math.random;
  }

  /** The scheduled reconnection, or `null` when none is pending. */
  get pendingRetry(): IDelayedCall | null {
    return this.#call;
  }

  /** Retries (after the back-off delay) unless `stopTrying()` was called. */
  override clientConnectionFailed(connector: IConnector, _reason: Failure): void {
    if (this.continueTrying) {
      this.connector = connector;
      this.retry();
    }
  }

  /** Retries (after the back-off delay) unless `stopTrying()` was called. */
  override clientConnectionLost(connector: IConnector, _reason: Failure): void {
    if (this.continueTrying) {
      this.connector = connector;
      this.retry();
    }
  }

  /**
   * Schedules `connector.connect()` (default: the last connector) after the
   * next back-off delay, unless `stopTrying()` was called or this retry
   * would pass `maxRetries` (then nothing is scheduled: the factory gives
   * up; logged when `noisy`). A retry already pending is cancelled and
   * replaced, so at most one reconnection is ever scheduled. A
   * `connect()` that throws when the time comes (the connector was
   * reconnected meanwhile) is logged.
   * @throws InvalidArgumentError if no connector is given or remembered.
   */
  retry(connector?: IConnector): void {
    if (!this.continueTrying) {
      if (this.noisy) msg(`Abandoning ${String(connector ?? this.connector)} on explicit request`);
      return;
    }
    const target = connector ?? this.connector;
    if (target === null) throw new InvalidArgumentError('no connector to retry');
    this.retries++;
    if (this.maxRetries !== null && this.retries > this.maxRetries) {
      if (this.noisy) msg(`Abandoning ${String(target)} after ${this.retries} retries.`);
      return;
    }
    let delay = Math.min(this.delay * this.factor, this.maxDelay);
    if (this.jitter) delay = Math.max(0, delay + delay * this.jitter * this.#gaussian());
    this.delay = delay;
    if (this.noisy) msg(`${String(target)} will retry in ${delay.toFixed(3)} seconds`);
    this.#cancelPending();
    this.#call = this.clock.callLater(delay, ReconnectingClientFactory.#reconnect, this, target);
  }

  /**
   * Stops reconnecting: cancels a pending retry, sets `continueTrying` to
   * `false` and, if the last connector is connecting, stops that attempt
   * (its `clientConnectionFailed` then sees `UserError` and does not retry).
   * An established connection is left alone: close it yourself.
   */
  stopTrying(): void {
    this.#cancelPending();
    this.continueTrying = false;
    const connector = this.connector;
    if (connector === null) return;
    try {
      connector.stopConnecting();
    } catch (e) {
      if (!(e instanceof NotConnectingError)) throw e;
    }
  }

  /**
   * Starts the back-off over: `delay = initialDelay`, `retries = 0`,
   * `continueTrying = true`. Call it once a connection has succeeded. A
   * retry already pending stays scheduled (and cancellable by `stopTrying`).
   */
  resetDelay(): void {
    this.delay = this.initialDelay;
    this.retries = 0;
    this.continueTrying = true;
  }

  /** A standard normal variate from the uniform source (Box–Muller). */
  #gaussian(): number {
    const u1 = 1 - this.random(); // (0, 1]: the log stays finite
    const u2 = this.random();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  #cancelPending(): void {
    const call = this.#call;
    this.#call = null;
    if (call?.active()) call.cancel();
  }

  static #reconnect(factory: ReconnectingClientFactory<IProtocol>, connector: IConnector): void {
    factory.#call = null;
    try {
      connector.connect();
    } catch (e) {
      err(e, `ReconnectingClientFactory could not reconnect ${String(connector)}`);
    }
  }
}
