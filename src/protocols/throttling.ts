/**
 * {@link ThrottlingFactory}: bandwidth and connection-count limits for a
 * wrapped factory, as Twisted's `policies.ThrottlingFactory`, with pause and
 * resume as the only mechanism.
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
  IPullProducer,
  IPushProducer,
  IReactorTime,
} from '../reactor/interfaces.js';
import { err, msg } from '../reactor/log.js';
import { reactor } from '../reactor/reactor.js';
import { LoopingCall } from '../reactor/task.js';
import { ProtocolWrapper, WrappingFactory } from './wrapping.js';

function byteLength(data: Uint8Array | string): number {
  return typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
}

/**
 * Stands between the transport and the producer the wrapped protocol
 * registered, so that two reasons to pause can coexist: the transport's own
 * flow control (its write buffer is full) and the factory's write throttle.
 * The producer is paused while either holds and resumed only when neither
 * does. A pull producer's requests for more (`resumeProducing`) are held back
 * while throttled and delivered (once) when the throttle lifts.
 */
class ThrottledProducer implements IPushProducer {
  readonly #producer: IPushProducer | IPullProducer;
  readonly #streaming: boolean;
  #byConsumer = false;
  #byThrottle = false;
  #paused = false;
  #pullWanted = false;

  constructor(producer: IPushProducer | IPullProducer, streaming: boolean, throttled: boolean) {
    this.#producer = producer;
    this.#streaming = streaming;
    this.#byThrottle = throttled;
    if (streaming) this.#update();
  }

  /** Called by the transport: its buffer is full. */
  pauseProducing(): void {
    this.#byConsumer = true;
    this.#update();
  }

  /** Called by the transport: its buffer drained (a pull producer: send more). */
  resumeProducing(): void {
    if (this.#streaming) {
      this.#byConsumer = false;
      this.#update();
    } else if (this.#byThrottle) {
      this.#pullWanted = true;
    } else {
      this.#producer.resumeProducing();
    }
  }

  stopProducing(): void {
    this.#producer.stopProducing();
  }

  throttle(): void {
    this.#byThrottle = true;
    if (this.#streaming) this.#update();
  }

  unthrottle(): void {
    this.#byThrottle = false;
    if (this.#streaming) {
      this.#update();
    } else if (this.#pullWanted) {
      this.#pullWanted = false;
      this.#producer.resumeProducing();
    }
  }

  #update(): void {
    const pause = this.#byConsumer || this.#byThrottle;
    if (pause === this.#paused) return;
    this.#paused = pause;
    const producer = this.#producer as IPushProducer;
    if (pause) producer.pauseProducing();
    else producer.resumeProducing();
  }
}

/**
 * The wrapper of {@link ThrottlingFactory}: counts the bytes read and written
 * into the factory, and pauses reads or the registered producer when the
 * factory throttles.
 *
 * Reads are paused while the factory throttles them *or* the wrapped
 * protocol paused them itself (its `pauseProducing`); they resume only when
 * neither holds. Likewise, the registered producer is paused while writes
 * are throttled or the transport's buffer is full. Writes are only
 * throttled through a registered producer: plain `write` calls are counted,
 * never refused or delayed (as in Twisted).
 */
export class ThrottlingProtocol<P extends IProtocol = IProtocol> extends ProtocolWrapper<P> {
  declare factory: ThrottlingFactory;

  #readsByProtocol = false;
  #readsByThrottle = false;
  #readPaused = false;
  #writesThrottled = false;
  #proxy: ThrottledProducer | null = null;

  /** `true` while the factory throttles this connection's reads. */
  get readsThrottled(): boolean {
    return this.#readsByThrottle;
  }

  /** `true` while the factory throttles this connection's writes. */
  get writesThrottled(): boolean {
    return this.#writesThrottled;
  }

  override write(data: Uint8Array | string): void {
    this.factory.registerWritten(byteLength(data));
    super.write(data);
  }

  override writeSequence(data: ReadonlyArray<Uint8Array | string>): void {
    let total = 0;
    for (const chunk of data) total += byteLength(chunk);
    this.factory.registerWritten(total);
    super.writeSequence(data);
  }

  override dataReceived(data: Buffer): void {
    this.factory.registerRead(data.byteLength);
    super.dataReceived(data);
  }

  /** Registers a proxy of `producer` with the transport (see the class documentation). */
  override registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    const proxy = new ThrottledProducer(producer, streaming, this.#writesThrottled);
    this.transport.registerProducer(proxy, streaming);
    this.#proxy = proxy;
    this.setProducer(producer);
  }

  override unregisterProducer(): void {
    this.#proxy = null;
    super.unregisterProducer();
  }

  /** The wrapped protocol pauses its reads. */
  override pauseProducing(): void {
    this.#readsByProtocol = true;
    this.#updateReads();
  }

  /** The wrapped protocol resumes its reads (they stay paused while throttled). */
  override resumeProducing(): void {
    this.#readsByProtocol = false;
    this.#updateReads();
  }

  /** Pauses reads for the factory's throttle. */
  throttleReads(): void {
    this.#readsByThrottle = true;
    this.#updateReads();
  }

  /** Lifts the factory's read throttle. */
  unthrottleReads(): void {
    this.#readsByThrottle = false;
    this.#updateReads();
  }

  /** Pauses the registered producer (if any) for the factory's throttle. */
  throttleWrites(): void {
    this.#writesThrottled = true;
    this.#proxy?.throttle();
  }

  /** Lifts the factory's write throttle. */
  unthrottleWrites(): void {
    this.#writesThrottled = false;
    this.#proxy?.unthrottle();
  }

  override connectionLost(reason: Failure): void {
    this.#proxy = null;
    super.connectionLost(reason);
  }

  #updateReads(): void {
    const pause = this.#readsByProtocol || this.#readsByThrottle;
    if (pause === this.#readPaused) return;
    this.#readPaused = pause;
    if (pause) this.transport.pauseProducing();
    else this.transport.resumeProducing();
  }
}

/** Options of {@link ThrottlingFactory}. */
export interface ThrottlingOptions {
  /** Connections beyond this many at once are refused (closed at once). Default: no limit. */
  maxConnectionCount?: number;
  /** Bytes per second read over all connections before reads are paused. Default: no limit. */
  readLimit?: number | null;
  /** Bytes per second written over all connections before producers are paused. Default: no limit. */
  writeLimit?: number | null;
  /** Where the once-a-second check runs (default: the `reactor`; tests pass a `Clock`). */
  clock?: IReactorTime;
}

function checkLimit(value: number | null | undefined, what: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new InvalidArgumentError(
      `${what} must be a positive number or null, not ${String(value)}`,
    );
  }
  return value;
}

/**
 * Throttles bandwidth and the number of connections of a wrapped factory
 * (Twisted's `ThrottlingFactory`).
 *
 * Bandwidth: the bytes read and written by all its connections are counted
 * over one-second windows. While at least one connection is open, a check
 * runs every second (the first when the first connection is built): if more
 * than `readLimit` bytes were read in the window, reads of *all* connections
 * are paused (`transport.pauseProducing()`) for
 * `bytesRead / readLimit - 1` seconds, so that the average comes back to the
 * limit; the same for writes against `writeLimit`, through the producers the
 * protocols registered (a protocol that writes without a producer is counted
 * but cannot be slowed). A connection made while throttled starts paused.
 * The window counters restart at each check.
 *
 * Connections: beyond `maxConnectionCount` open connections, `buildProtocol`
 * returns `null`, so the port closes the new connection at once.
 *
 * When the last connection closes, the check stops, pending unthrottles are
 * cancelled and the counters reset: no timer outlives the connections.
 */
export class ThrottlingFactory<
  F extends IProtocolFactory = IProtocolFactory,
> extends WrappingFactory<F, ThrottlingProtocol> {
  /** Connections built and not yet closed. */
  connectionCount = 0;
  /** The most connections at once; more are refused. */
  maxConnectionCount: number;
  /** Bytes per second read before reads are paused, or `null`. */
  readLimit: number | null;
  /** Bytes per second written before producers are paused, or `null`. */
  writeLimit: number | null;
  /** Bytes read in the current one-second window. */
  readThisSecond = 0;
  /** Bytes written in the current one-second window. */
  writtenThisSecond = 0;
  /** Where the checks and unthrottles are scheduled. */
  readonly clock: IReactorTime;

  #checker: LoopingCall<[ThrottlingFactory]> | null = null;
  #unthrottleReadsCall: IDelayedCall | null = null;
  #unthrottleWritesCall: IDelayedCall | null = null;
  #readsThrottled = false;
  #writesThrottled = false;

  /**
   * @throws InvalidArgumentError if `maxConnectionCount` is not a
   *   non-negative integer (or `Infinity`), or a limit is not positive.
   */
  constructor(wrappedFactory: F, options: ThrottlingOptions = {}) {
    super(wrappedFactory);
    const max = options.maxConnectionCount ?? Number.POSITIVE_INFINITY;
    if (typeof max !== 'number' || !(max >= 0) || (!Number.isInteger(max) && max !== Infinity)) {
      throw new InvalidArgumentError(
        `maxConnectionCount must be a non-negative integer, not ${String(max)}`,
      );
    }
    this.maxConnectionCount = max;
    this.readLimit = checkLimit(options.readLimit, 'readLimit');
    this.writeLimit = checkLimit(options.writeLimit, 'writeLimit');
    this.clock = options.clock ?? reactor;
  }

  /** `true` while reads are paused by the read limit. */
  get readsThrottled(): boolean {
    return this.#readsThrottled;
  }

  /** `true` while producers are paused by the write limit. */
  get writesThrottled(): boolean {
    return this.#writesThrottled;
  }

  /** Called by the protocols: `length` more bytes were written. */
  registerWritten(length: number): void {
    this.writtenThisSecond += length;
  }

  /** Called by the protocols: `length` more bytes were read. */
  registerRead(length: number): void {
    this.readThisSecond += length;
  }

  /**
   * Ends a read window: throttles reads if it passed `readLimit` (for
   * `read / readLimit - 1` seconds), then starts a new window. Runs every
   * second while connections are open.
   */
  checkReadBandwidth(): void {
    const limit = this.readLimit;
    if (limit !== null && this.readThisSecond > limit) {
      this.throttleReads();
      const throttleTime = this.readThisSecond / limit - 1;
      this.#unthrottleReadsCall = this.#schedule(
        this.#unthrottleReadsCall,
        throttleTime,
        ThrottlingFactory.#unthrottleReadsLater,
      );
    }
    this.readThisSecond = 0;
  }

  /** As {@link ThrottlingFactory.checkReadBandwidth}, for writes against `writeLimit`. */
  checkWriteBandwidth(): void {
    const limit = this.writeLimit;
    if (limit !== null && this.writtenThisSecond > limit) {
      this.throttleWrites();
      const throttleTime = this.writtenThisSecond / limit - 1;
      this.#unthrottleWritesCall = this.#schedule(
        this.#unthrottleWritesCall,
        throttleTime,
        ThrottlingFactory.#unthrottleWritesLater,
      );
    }
    this.writtenThisSecond = 0;
  }

  /** Pauses reads on all connections (and on new ones until `unthrottleReads`). */
  throttleReads(): void {
    msg(`Throttling reads on ${String(this)}`);
    this.#readsThrottled = true;
    for (const p of this.protocols) guard(p, 'throttleReads');
  }

  /** Resumes reads on all connections (those the protocol paused itself stay paused). */
  unthrottleReads(): void {
    this.#cancel(this.#unthrottleReadsCall);
    this.#unthrottleReadsCall = null;
    msg(`Stopped throttling reads on ${String(this)}`);
    this.#readsThrottled = false;
    for (const p of this.protocols) guard(p, 'unthrottleReads');
  }

  /** Pauses the registered producers of all connections. */
  throttleWrites(): void {
    msg(`Throttling writes on ${String(this)}`);
    this.#writesThrottled = true;
    for (const p of this.protocols) guard(p, 'throttleWrites');
  }

  /** Resumes the registered producers of all connections. */
  unthrottleWrites(): void {
    this.#cancel(this.#unthrottleWritesCall);
    this.#unthrottleWritesCall = null;
    msg(`Stopped throttling writes on ${String(this)}`);
    this.#writesThrottled = false;
    for (const p of this.protocols) guard(p, 'unthrottleWrites');
  }

  /**
   * A wrapped protocol for `addr`, or `null` when `maxConnectionCount`
   * connections are open (logged: `Max connection count reached!`) or the
   * wrapped factory refuses. The first connection starts the checks.
   */
  override buildProtocol(addr: IAddress): ThrottlingProtocol | null {
    if (this.connectionCount >= this.maxConnectionCount) {
      msg('Max connection count reached!');
      return null;
    }
    const protocol = super.buildProtocol(addr);
    if (protocol === null) return null;
    if (this.connectionCount++ === 0) this.#startChecking();
    return protocol;
  }

  protected override wrapProtocol(wrapped: IProtocol, _addr: IAddress): ThrottlingProtocol {
    return new ThrottlingProtocol(this, wrapped);
  }

  /** Adds the wrapper; a connection made while throttled starts throttled. */
  override registerProtocol(wrapper: ThrottlingProtocol): void {
    super.registerProtocol(wrapper);
    if (this.#readsThrottled) wrapper.throttleReads();
    if (this.#writesThrottled) wrapper.throttleWrites();
  }

  /** Removes the wrapper; after the last one, stops every timer and resets the state. */
  override unregisterProtocol(wrapper: ThrottlingProtocol): void {
    super.unregisterProtocol(wrapper);
    if (--this.connectionCount > 0) return;
    this.connectionCount = 0;
    const checker = this.#checker;
    this.#checker = null;
    if (checker?.running) checker.stop();
    this.#cancel(this.#unthrottleReadsCall);
    this.#cancel(this.#unthrottleWritesCall);
    this.#unthrottleReadsCall = null;
    this.#unthrottleWritesCall = null;
    this.#readsThrottled = false;
    this.#writesThrottled = false;
    this.readThisSecond = 0;
    this.writtenThisSecond = 0;
  }

  #startChecking(): void {
    if (this.readLimit === null && this.writeLimit === null) return;
    const checker = new LoopingCall<[ThrottlingFactory]>(ThrottlingFactory.#check, this);
    checker.clock = this.clock;
    this.#checker = checker;
    checker.start(1, true).addErrback((failure) => {
      err(failure, 'ThrottlingFactory bandwidth check failed');
    });
  }

  /** Arms (or moves, keeping one timer) the unthrottle call. */
  #schedule(
    call: IDelayedCall | null,
    delay: number,
    fn: (factory: ThrottlingFactory) => void,
  ): IDelayedCall {
    if (call?.active()) {
      if (call.getTime() < this.clock.seconds() + delay) call.reset(delay);
      return call;
    }
    return this.clock.callLater(delay, fn, this);
  }

  #cancel(call: IDelayedCall | null): void {
    if (call?.active()) call.cancel();
  }

  static #check(factory: ThrottlingFactory): void {
    if (factory.readLimit !== null) factory.checkReadBandwidth();
    if (factory.writeLimit !== null) factory.checkWriteBandwidth();
  }

  static #unthrottleReadsLater(factory: ThrottlingFactory): void {
    factory.#unthrottleReadsCall = null;
    factory.unthrottleReads();
  }

  static #unthrottleWritesLater(factory: ThrottlingFactory): void {
    factory.#unthrottleWritesCall = null;
    factory.unthrottleWrites();
  }
}

type ThrottleHook = 'throttleReads' | 'unthrottleReads' | 'throttleWrites' | 'unthrottleWrites';

/** One connection's failing producer must not stop the others from being throttled. */
function guard(protocol: ThrottlingProtocol, hook: ThrottleHook): void {
  try {
    protocol[hook]();
  } catch (e) {
    err(e, `Unhandled error in ${hook}() of ${String(protocol)}`);
  }
}
