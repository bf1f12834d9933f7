/**
 * `NodeReactor`: the reactor over Node's own event loop, and `reactor`, its
 * default instance.
 *
 * Node's loop (libuv) already runs, so the reactor does not spin one: `run()`
 * marks it running and fires the start-up event, `stop()` fires the shutdown
 * event, and the process lives while ports, connections or delayed calls are
 * open, as with plain Node. Delayed calls run whether or not the reactor has
 * been `run()`, like `setTimeout`.
 *
 * @module
 */

import { EventEmitter } from 'eventemitter3';
import type { Connector } from './connector.js';
import { Deferred } from './deferred.js';
import { ReactorAlreadyRunning, ReactorNotRunning } from './errors.js';
import type {
  ConnectTCPOptions,
  IClientFactory,
  IDatagramProtocol,
  IListeningPort,
  IProcessProtocol,
  IProtocolFactory,
  IReactorCore,
  IReactorProcess,
  IReactorTCP,
  IReactorTime,
  IReactorTLS,
  IReactorUDP,
  IReactorUNIX,
  ListenSSLOptions,
  ListenTCPOptions,
  ListenUDPOptions,
  ListenUNIXOptions,
  SystemEvent,
  TLSClientContextOptions,
  TLSServerContextOptions,
  TriggerId,
  TriggerPhase,
} from './interfaces.js';
import { err } from './log.js';
import type { Port, StreamOptions } from './port.js';
import { type Process, type ProcessOptions, spawnProcess } from './process.js';
import { connectTCP, listenTCP } from './tcp.js';
import { ThreadPool } from './threads.js';
import { type DelayedCall, TimerQueue } from './timer-queue.js';
import { connectSSL, listenSSL } from './tls.js';
import { SystemEventTriggers } from './triggers.js';
import { listenUDP, type UDPPort } from './udp.js';
import { connectUNIX, listenUNIX } from './unix.js';

/** The longest delay Node's `setTimeout` takes (about 24.8 days); longer waits re-arm. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * A new earliest call re-arms the Node timer only if it is due at least this
 * much (seconds) before the armed time: Node's timers have 1 ms granularity.
 */
const REARM_SLACK = 0.001;

/** Lifecycle events of a {@link NodeReactor}, for observers (`reactor.on('stopped', …)`). */
export interface ReactorEvents {
  /** The start-up event has completed (its triggers and the `callWhenRunning` calls ran). */
  startup: [];
  /** `stop()` was called: the shutdown event is about to fire. */
  shutdown: [];
  /** The shutdown event has completed and `running` is `false`. */
  stopped: [];
}

/** Options of {@link NodeReactor.run}. */
export interface RunOptions {
  /**
   * Make SIGINT and SIGTERM call `stop()` (default `true`). The handlers are
   * removed as soon as `stop()` is called, for whatever reason, so a second
   * signal during a slow shutdown gets Node's default behaviour (the process
   * exits) unless something else listens for it.
   */
  installSignalHandlers?: boolean;
}

/**
 * The reactor over Node's event loop: time ({@link IReactorTime}), lifecycle
 * ({@link IReactorCore}) and, through `tcp.ts`/`unix.ts`, stream transports
 * ({@link IReactorTCP}, {@link IReactorUNIX}).
 *
 * Delayed calls live in one {@link TimerQueue} with at most one Node timer
 * armed, for the earliest call: `setImmediate` when it is already due (so
 * `callLater(0, …)` runs on the next turn, after pending I/O), `setTimeout`
 * otherwise. The timer is re-armed only when a call earlier than the armed time
 * is scheduled, and after each run. It keeps the process alive (it is not
 * `unref()`ed) while any delayed call is active; when the last one runs or is
 * cancelled, no timer is left.
 *
 * System event triggers are one-shot, as in Twisted: a trigger runs once, the
 * next time its event fires, and is then gone (`removeSystemEventTrigger` on it
 * throws). So a reactor can be run and stopped several times; triggers for the
 * second run are added after the first.
 */
export class NodeReactor
  extends EventEmitter<ReactorEvents>
  implements
    IReactorTime,
    IReactorCore,
    IReactorTCP,
    IReactorUNIX,
    IReactorUDP,
    IReactorTLS,
    IReactorProcess
{
  readonly #queue: TimerQueue;
  #timer: NodeJS.Timeout | null = null;
  #immediate: NodeJS.Immediate | null = null;
  /** The time the armed Node timer is for; `Infinity` when none is armed. */
  #armedAt = Number.POSITIVE_INFINITY;
  /** `true` while the queue runs: arming waits for the end of the pass. */
  #inPass = false;

  #running = false;
  #started = false;
  #stopping = false;
  #whenStopped: Deferred<void> | null = null;
  #signalsInstalled = false;
  readonly #triggers = new SystemEventTriggers();
  readonly #ports = new Set<IListeningPort>();
  #threadPool: ThreadPool | null = null;

  constructor() {
    super();
    this.#queue = new TimerQueue(() => this.seconds(), {
      onScheduled: (time) => {
        if (!this.#inPass && time < this.#armedAt - REARM_SLACK) this.#arm(time);
      },
      onEmpty: () => {
        if (!this.#inPass) this.#disarm();
      },
    });
  }

  // ------------------------------------------------------------------ IReactorTime

  /** Monotonic seconds since the process started (`performance.now() / 1000`). */
  seconds(): number {
    return performance.now() / 1000;
  }

  /**
   * Runs `fn(...args)` once, `delay` seconds from now; `0` means on the next
   * turn of the loop, after pending I/O. Calls due at the same time run in the
   * order scheduled; a call scheduled from a running call never runs in the
   * same pass. An exception from `fn` is logged with `err()`.
   * @throws InvalidArgumentError if `delay` is negative or not a finite number.
   */
  callLater<A extends unknown[]>(
    delay: number,
    fn: (...args: A) => unknown,
    ...args: A
  ): DelayedCall {
    return this.#queue.schedule(delay, fn, args);
  }

  /** Every active delayed call, in no particular order. */
  getDelayedCalls(): DelayedCall[] {
    return this.#queue.getDelayedCalls();
  }

  #arm(time: number): void {
    this.#disarm();
    this.#armedAt = time;
    const ms = (time - this.seconds()) * 1000;
    if (ms <= 0) {
      this.#immediate = setImmediate(this.#fire);
    } else {
      this.#timer = setTimeout(this.#fire, Math.min(Math.ceil(ms), MAX_TIMEOUT_MS));
    }
  }

  #disarm(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#immediate !== null) {
      clearImmediate(this.#immediate);
      this.#immediate = null;
    }
    this.#armedAt = Number.POSITIVE_INFINITY;
  }

  readonly #fire = (): void => {
    this.#timer = null;
    this.#immediate = null;
    this.#armedAt = Number.POSITIVE_INFINITY;
    this.#inPass = true;
    try {
      this.#queue.runUntil(this.seconds());
    } finally {
      this.#inPass = false;
      // Node timers may fire a little early against performance.now(): a call
      // not yet due simply gets a new timer.
      const next = this.#queue.nextTime();
      if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
    }
  };

  // ------------------------------------------------------------------ IReactorCore

  /** `true` from `run()` until the shutdown event has completed. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Starts the reactor: marks it running, fires the `startup` event (its
   * `before`, `during` and `after` triggers, waiting between phases for the
   * Deferreds they return; the `callWhenRunning` calls are `after` triggers),
   * then emits `'startup'`. Returns at once: the start-up event may still be
   * waiting on a Deferred.
   * @returns a Deferred that fires (with `undefined`) when the reactor has
   *   stopped: after the shutdown event has completed.
   * @throws ReactorAlreadyRunning if it is running (or still stopping).
   */
  run(options: RunOptions = {}): Deferred<void> {
    if (this.#running) throw new ReactorAlreadyRunning();
    this.#running = true;
    this.#started = false;
    this.#stopping = false;
    const whenStopped = new Deferred<void>();
    this.#whenStopped = whenStopped;
    if (options.installSignalHandlers ?? true) this.#installSignalHandlers();
    this.fireSystemEvent('startup').addCallback(() => {
      if (this.#whenStopped !== whenStopped) return; // stopped (and maybe re-run) meanwhile
      this.#started = true;
      this.#emit('startup');
    });
    return whenStopped;
  }

  /**
   * Stops the reactor. Synchronously: marks it stopping, removes the signal
   * handlers `run()` installed and emits `'shutdown'`. On the next turn of the
   * loop (never inside the caller's stack), fires the `shutdown` event: all
   * `before` triggers; then `during`, where listening ports opened through this
   * reactor stop listening, alongside the `during` triggers; then `after`. Each
   * phase waits for the Deferreds (and thenables) returned in it; a trigger that
   * throws or fails is logged and the event goes on. When it has completed,
   * `running` becomes `false`, `'stopped'` is emitted and the Deferred `run()`
   * returned fires. Delayed calls are left as they are: still active and
   * cancellable.
   * @throws ReactorNotRunning if it is not running, or already stopping.
   */
  stop(): void {
    if (!this.#running || this.#stopping) throw new ReactorNotRunning();
    this.#stopping = true;
    this.#removeSignalHandlers();
    this.#emit('shutdown');
    setImmediate(this.#shutdown);
  }

  readonly #shutdown = (): void => {
    this.fireSystemEvent('shutdown').addCallback(() => {
      this.#running = false;
      this.#started = false;
      this.#stopping = false;
      const whenStopped = this.#whenStopped;
      this.#whenStopped = null;
      this.#emit('stopped');
      whenStopped?.callback(undefined);
    });
  };

  /**
   * Runs `fn(...args)` once the reactor is running: at once (and any exception
   * is thrown to the caller) if the start-up event has completed; otherwise as
   * an `after startup` trigger, in the order added.
   * @returns the trigger's id (for `removeSystemEventTrigger`), or `undefined`
   *   when `fn` ran at once.
   */
  callWhenRunning<A extends unknown[]>(
    fn: (...args: A) => unknown,
    ...args: A
  ): TriggerId | undefined {
    if (this.#started) {
      fn(...args);
      return undefined;
    }
    return this.addSystemEventTrigger('after', 'startup', fn, ...args);
  }

  /**
   * Adds a one-shot trigger: `fn(...args)` runs in `phase` of the next firing
   * of `event`, after the triggers already added to that phase. A trigger added
   * to a phase that is running runs in that same phase. `fn` may return a
   * Deferred or thenable: the next phase waits for it.
   * @throws InvalidArgumentError for an unknown phase or a non-function `fn`.
   */
  addSystemEventTrigger<A extends unknown[]>(
    phase: TriggerPhase,
    event: SystemEvent,
    fn: (...args: A) => unknown,
    ...args: A
  ): TriggerId {
    return this.#triggers.add(phase, event, fn, args);
  }

  /**
   * Removes a trigger that has not run yet.
   * @throws InvalidArgumentError if `id` is unknown, already removed, or its
   *   trigger has run (triggers are one-shot).
   */
  removeSystemEventTrigger(id: TriggerId): void {
    this.#triggers.remove(id);
  }

  /**
   * Fires `event` now: runs and consumes its `before` triggers in order, waits
   * for the Deferreds/thenables they returned, then the same for `during` and
   * `after`. For `shutdown`, the `during` phase also stops the listening ports
   * opened through this reactor and waits for them. Failures are logged (with
   * `err()`) and never stop the event.
   * @returns a Deferred that fires (never fails) when the `after` phase is
   *   done; already fired if nothing had to be waited for.
   */
  fireSystemEvent(event: SystemEvent): Deferred<void> {
    return this.#triggers.fire(event, (phase, waits) => {
      if (event === 'shutdown' && phase === 'during') this.#stopPorts(waits);
    });
  }

  #stopPorts(waits: PromiseLike<unknown>[]): void {
    const ports = [...this.#ports];
    this.#ports.clear();
    for (const port of ports) {
      try {
        waits.push(port.stopListening());
      } catch (error) {
        err(error, 'Error stopping a listening port at shutdown');
      }
    }
  }

  #emit(event: keyof ReactorEvents): void {
    try {
      this.emit(event);
    } catch (error) {
      err(error, `Error in a '${event}' reactor observer`);
    }
  }

  // ------------------------------------------------------------------ TCP and UNIX

  /**
   * Listens on TCP `port` (see `listenTCP` in `tcp.ts`). The port is stopped
   * in the `during` phase of this reactor's shutdown unless it stopped before.
   * @throws InvalidArgumentError for a bad port or backlog.
   */
  listenTCP(
    port: number,
    factory: IProtocolFactory,
    options?: ListenTCPOptions & StreamOptions,
  ): Port {
    return this.#track(listenTCP(this, port, factory, options));
  }

  /**
   * Connects to `host:port` over TCP (see `connectTCP` in `tcp.ts`).
   * @throws InvalidArgumentError for a bad port, timeout or bind address.
   */
  connectTCP(
    host: string,
    port: number,
    factory: IClientFactory,
    options?: ConnectTCPOptions & StreamOptions,
  ): Connector {
    return connectTCP(this, host, port, factory, options);
  }

  /**
   * Listens on the UNIX-domain socket `path` (see `listenUNIX` in `unix.ts`).
   * The port is stopped at shutdown, as with `listenTCP`.
   * @throws InvalidArgumentError for an empty path or a bad backlog or mode.
   */
  listenUNIX(
    path: string,
    factory: IProtocolFactory,
    options?: ListenUNIXOptions & StreamOptions,
  ): Port {
    return this.#track(listenUNIX(this, path, factory, options));
  }

  /**
   * Connects to the UNIX-domain socket at `path` (see `connectUNIX` in `unix.ts`).
   * @throws InvalidArgumentError for an empty path or a bad timeout.
   */
  connectUNIX(
    path: string,
    factory: IClientFactory,
    options?: { timeout?: number } & StreamOptions,
  ): Connector {
    return connectUNIX(this, path, factory, options);
  }

  // ------------------------------------------------------------------ TLS

  /**
   * Listens for TLS connections on TCP `port` (see `listenSSL` in `tls.ts`).
   * The port is stopped at shutdown, as with `listenTCP`.
   * @throws InvalidArgumentError for a bad port, backlog or handshake
   *   timeout; `TLSContextError` for context options that make no context.
   */
  listenSSL(
    port: number,
    factory: IProtocolFactory,
    contextOptions: TLSServerContextOptions,
    options?: ListenSSLOptions & StreamOptions,
  ): Port {
    return this.#track(listenSSL(this, port, factory, contextOptions, options));
  }

  /**
   * Connects to `host:port` over TLS (see `connectSSL` in `tls.ts`).
   * @throws InvalidArgumentError for a bad port, timeout or bind address;
   *   `TLSContextError` for context options that make no context.
   */
  connectSSL(
    host: string,
    port: number,
    factory: IClientFactory,
    contextOptions: TLSClientContextOptions,
    options?: ConnectTCPOptions & StreamOptions,
  ): Connector {
    return connectSSL(this, host, port, factory, contextOptions, options);
  }

  // ------------------------------------------------------------------ UDP

  /**
   * Binds a UDP socket and connects `protocol` to it (see `listenUDP` in
   * `udp.ts`). The port is stopped at shutdown, as with `listenTCP`.
   * @throws InvalidArgumentError for a bad port, interface or option.
   */
  listenUDP(port: number, protocol: IDatagramProtocol, options?: ListenUDPOptions): UDPPort {
    const udp = listenUDP(this, port, protocol, options);
    this.#ports.add(udp);
    udp.once('close', () => this.#ports.delete(udp));
    return udp;
  }

  // ------------------------------------------------------------------ processes

  /**
   * Starts a child process and connects `protocol` to it (see `spawnProcess`
   * in `process.ts`; as in Twisted, `args[0]` is the child's `argv[0]`).
   * @throws InvalidArgumentError for bad arguments; `PTYNotSupportedError`
   *   for `usePTY: true`.
   */
  spawnProcess(
    protocol: IProcessProtocol,
    executable: string,
    args?: readonly string[],
    options?: ProcessOptions,
  ): Process {
    return spawnProcess(this, protocol, executable, args, options);
  }

  // ------------------------------------------------------------------ threads

  /**
   * The reactor's thread pool (`threads.ts`), made and started on first use
   * (0 to 10 workers, started on demand) and stopped in the `during` phase
   * of the next shutdown; after that, the next call makes a new one.
   */
  getThreadPool(): ThreadPool {
    let pool = this.#threadPool;
    if (pool === null) {
      pool = new ThreadPool({ minThreads: 0, maxThreads: 10, name: 'reactor' });
      pool.start();
      this.#threadPool = pool;
      this.addSystemEventTrigger('during', 'shutdown', this.#stopThreadPool, pool);
    }
    return pool;
  }

  /**
   * Sets the most workers the reactor's thread pool runs at once.
   * @throws InvalidArgumentError unless `size` is a positive integer.
   */
  suggestThreadPoolSize(size: number): void {
    this.getThreadPool().adjustPoolsize(undefined, size);
  }

  readonly #stopThreadPool = (pool: ThreadPool): Deferred<void> => {
    if (this.#threadPool === pool) this.#threadPool = null;
    return pool.stop();
  };

  /** Keeps `port` for shutdown until it closes ('error' is not observed: that would hide it). */
  #track(port: Port): Port {
    this.#ports.add(port);
    port.once('close', () => this.#ports.delete(port));
    return port;
  }

  // ------------------------------------------------------------------ signals

  readonly #onSignal = (): void => {
    if (this.#running && !this.#stopping) this.stop();
  };

  #installSignalHandlers(): void {
    if (this.#signalsInstalled) return;
    this.#signalsInstalled = true;
    process.on('SIGINT', this.#onSignal);
    process.on('SIGTERM', this.#onSignal);
  }

  #removeSignalHandlers(): void {
    if (!this.#signalsInstalled) return;
    this.#signalsInstalled = false;
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
  }
}

/** The default reactor, shared by everything that is not given another one. */
export const reactor: NodeReactor = new NodeReactor();
