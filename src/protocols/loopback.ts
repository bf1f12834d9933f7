/**
 * Two protocols connected in memory, for testing protocols without sockets.
 *
 * - {@link connectedServerAndClient} and {@link IOPump} (Twisted's
 *   `twisted.test.iosim`): nothing happens behind the test's back. Writes are
 *   queued on each side's {@link FakeTransport}, and {@link IOPump.pump}
 *   delivers them, honours pause/resume in both directions, drives
 *   registered producers and carries out close requests.
 * - {@link loopbackAsync} and {@link AsyncLoopback} (Twisted's
 *   `twisted.protocols.loopback.loopbackAsync`): the pump runs by itself,
 *   one turn per reactor turn, and a Deferred fires once both sides have
 *   lost the connection.
 *
 * Faults can be injected: deliver in small pieces (`chunkSize: 1` splits
 * every write into single bytes; with the async loopback, `split` spreads
 * the pieces over turns), drop whole writes (`drop`), delay every delivery
 * (`delay`), or break the connection mid-stream (`breakConnection()`).
 *
 * @module
 */

import { IPv4Address } from '../reactor/address.js';
import { Deferred } from '../reactor/deferred.js';
import {
  ConnectionAborted,
  ConnectionDone,
  ConnectionLost,
  InvalidArgumentError,
  TransportClosedError,
} from '../reactor/errors.js';
import type {
  IAddress,
  IDelayedCall,
  IHalfCloseableProtocol,
  IProtocol,
  IProtocolFactory,
  IReactorTime,
} from '../reactor/interfaces.js';
import { err } from '../reactor/log.js';
import { reactor as defaultReactor } from '../reactor/reactor.js';
import { DEFAULT_HIGH_WATER, FakeTransport } from './fake-transport.js';

export { FakeTransport } from './fake-transport.js';

function hasReadConnectionLost(p: IProtocol): p is IHalfCloseableProtocol {
  return typeof (p as Partial<IHalfCloseableProtocol>).readConnectionLost === 'function';
}

/** Which end of an in-memory connection wrote something. */
export type LoopbackSide = 'client' | 'server';

/**
 * Decides whether a write is lost on the way: a probability in `[0, 1]`
 * (drawn from a PRNG seeded with the `seed` option, so a run is
 * reproducible), or a predicate given each write, the side that wrote it and
 * its index among that side's writes (0, 1, …).
 */
export type DropPolicy = number | ((data: Buffer, side: LoopbackSide, index: number) => boolean);

// ====================================================================== pump steps

/**
 * Delivers what `from` wrote to `to`'s protocol, at most `pieces` calls of
 * at most `chunkSize` bytes (0: whole buffers), while `to` is not paused.
 * Returns whether anything was delivered.
 */
function deliver(
  from: FakeTransport,
  to: FakeTransport,
  chunkSize: number,
  pieces: number,
): boolean {
  let moved = false;
  for (let n = 0; n < pieces && !to.readPaused && !to.lost && !from.aborted; n++) {
    const chunk = from.takeOutgoing(chunkSize);
    if (chunk === null) break;
    moved = true;
    to.protocol.dataReceived(chunk);
  }
  return moved;
}

/** Carries a write-side half-close of `from` over to `to`. */
function halfClose(from: FakeTransport, to: FakeTransport): boolean {
  if (to.lost || to.readClosed || !from.takeWriteClose()) return false;
  to.readClosed = true;
  if (hasReadConnectionLost(to.protocol)) to.protocol.readConnectionLost();
  else to.loseConnection();
  return true;
}

/** Carries out aborts and closes whose buffers have drained. */
function closeIfReady(c: FakeTransport, s: FakeTransport): boolean {
  if (c.lost && s.lost) return false;
  if (c.aborted || s.aborted) {
    c.deliverLost(c.aborted ? new ConnectionAborted() : new ConnectionLost());
    s.deliverLost(s.aborted ? new ConnectionAborted() : new ConnectionLost());
    return true;
  }
  if (c.readyToClose() || s.readyToClose()) {
    // The closing side's last bytes were delivered above; the peer's
    // unread bytes are lost with the connection, as with a real socket.
    c.deliverLost(new ConnectionDone());
    s.deliverLost(new ConnectionDone());
    return true;
  }
  return false;
}

/** Both sides lose the connection at once with `reason`; queued bytes are dropped. */
function breakBoth(c: FakeTransport, s: FakeTransport, reason: Error): void {
  c.abortConnection();
  s.abortConnection();
  c.deliverLost(reason);
  s.deliverLost(reason);
}

/** mulberry32: a tiny seeded PRNG, so that a lossy run can be replayed. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Installs the `drop` option on both transports (checked at the API edge). */
function installDrop(
  client: FakeTransport,
  server: FakeTransport,
  drop: DropPolicy | undefined,
  seed: number | undefined,
): void {
  if (drop === undefined) return;
  if (seed !== undefined && !Number.isInteger(seed)) {
    throw new InvalidArgumentError(`seed must be an integer: ${seed}`);
  }
  let decide: (data: Buffer, side: LoopbackSide, index: number) => boolean;
  if (typeof drop === 'number') {
    if (!(drop >= 0 && drop <= 1)) {
      throw new InvalidArgumentError(`drop must be a probability in [0, 1]: ${drop}`);
    }
    const random = seededRandom(seed ?? 1);
    decide = () => random() < drop;
  } else if (typeof drop === 'function') {
    decide = drop;
  } else {
    throw new InvalidArgumentError('drop must be a probability or a predicate');
  }
  let clientWrites = 0;
  let serverWrites = 0;
  client.dropWrite = (data) => decide(data, 'client', clientWrites++);
  server.dropWrite = (data) => decide(data, 'server', serverWrites++);
}

function checkCount(value: number | undefined, name: string): number {
  if (value === undefined) return 0;
  if (!(Number.isInteger(value) && value >= 0)) {
    throw new InvalidArgumentError(`${name} must be a non-negative integer: ${value}`);
  }
  return value;
}

// ====================================================================== IOPump

/** Options of {@link IOPump} and {@link connectedServerAndClient}. */
export interface PumpOptions {
  /** Deliver at most this many bytes per `dataReceived` (0 = whole buffers). Default 0. */
  chunkSize?: number;
  /** Streaming producers are paused above this many queued bytes. Default 64 KiB. */
  highWaterMark?: number;
  /**
   * Fault injection: lose whole writes (see {@link DropPolicy}). A dropped
   * write is gone from the byte stream, so the receiver sees the stream with
   * a hole in it: this is for testing how a protocol copes with corrupt
   * input, not a model of TCP (which never loses bytes silently).
   */
  drop?: DropPolicy;
  /** Seed of the PRNG behind a probability `drop` (an integer; default 1). */
  seed?: number;
}

/** Moves bytes between the two ends of an in-memory connection. */
export class IOPump {
  readonly #chunkSize: number;

  constructor(
    readonly client: IProtocol,
    readonly server: IProtocol,
    readonly clientTransport: FakeTransport,
    readonly serverTransport: FakeTransport,
    options: PumpOptions = {},
  ) {
    this.#chunkSize = checkCount(options.chunkSize, 'chunkSize');
  }

  /**
   * One round: delivers what each side wrote (as far as the receiving side is
   * not paused), drives producers whose buffers drained, and carries out
   * half-closes and closes. Returns whether anything happened.
   */
  pump(): boolean {
    const c = this.clientTransport;
    const s = this.serverTransport;
    let moved = false;
    moved = deliver(c, s, this.#chunkSize, Number.POSITIVE_INFINITY) || moved;
    moved = deliver(s, c, this.#chunkSize, Number.POSITIVE_INFINITY) || moved;
    moved = c.drained() || moved;
    moved = s.drained() || moved;
    moved = halfClose(c, s) || moved;
    moved = halfClose(s, c) || moved;
    moved = closeIfReady(c, s) || moved;
    return moved;
  }

  /**
   * Pumps until nothing more moves, at most `maxRounds` times.
   * Returns the number of rounds that moved something.
   */
  flush(maxRounds = 10_000): number {
    let rounds = 0;
    while (rounds < maxRounds && this.pump()) rounds++;
    return rounds;
  }

  /**
   * Injects a network failure: both sides lose the connection at once, with
   * `ConnectionLost` (or `reason`), and queued bytes are dropped.
   */
  breakConnection(reason: Error = new ConnectionLost()): void {
    breakBoth(this.clientTransport, this.serverTransport, reason);
  }
}

/** A protocol factory or a function that makes one protocol. */
export type ProtocolSource = IProtocolFactory | (() => IProtocol);

function build(source: ProtocolSource, addr: IAddress): IProtocol {
  if (typeof source === 'function') return source();
  const protocol = source.buildProtocol(addr);
  if (protocol === null) throw new TransportClosedError('the factory refused the connection');
  return protocol;
}

/** What {@link connectedServerAndClient} returns. */
export interface ConnectedPair<C extends IProtocol, S extends IProtocol> {
  client: C;
  server: S;
  pump: IOPump;
}

const SERVER_ADDRESS = new IPv4Address('TCP', '127.0.0.1', 8080);
const CLIENT_ADDRESS = new IPv4Address('TCP', '127.0.0.1', 41414);

/**
 * Builds a server and a client protocol, connects them in memory and (unless
 * `greet` is false) runs one `flush()` so that greetings written in
 * `connectionMade` are exchanged.
 * @throws InvalidArgumentError for bad options.
 */
export function connectedServerAndClient<
  S extends IProtocol = IProtocol,
  C extends IProtocol = IProtocol,
>(
  server: ProtocolSource,
  client: ProtocolSource,
  options: PumpOptions & { greet?: boolean } = {},
): ConnectedPair<C, S> {
  const serverProtocol = build(server, CLIENT_ADDRESS) as S;
  const clientProtocol = build(client, SERVER_ADDRESS) as C;
  const hwm = options.highWaterMark ?? DEFAULT_HIGH_WATER;
  const serverTransport = new FakeTransport(
    serverProtocol,
    true,
    SERVER_ADDRESS,
    CLIENT_ADDRESS,
    hwm,
  );
  const clientTransport = new FakeTransport(
    clientProtocol,
    false,
    CLIENT_ADDRESS,
    SERVER_ADDRESS,
    hwm,
  );
  installDrop(clientTransport, serverTransport, options.drop, options.seed);
  const pump = new IOPump(
    clientProtocol,
    serverProtocol,
    clientTransport,
    serverTransport,
    options,
  );
  serverProtocol.makeConnection(serverTransport);
  clientProtocol.makeConnection(clientTransport);
  if (options.greet ?? true) pump.flush();
  return { client: clientProtocol, server: serverProtocol, pump };
}

// ====================================================================== async loopback

/** Options of {@link loopbackAsync} and {@link AsyncLoopback}. */
export interface LoopbackOptions extends PumpOptions {
  /**
   * Where turns are scheduled (`callLater`); pass a `Clock` to step the
   * connection from a test. Default: the reactor.
   */
  reactor?: IReactorTime;
  /**
   * Fault injection: deliver each direction's bytes in pieces of at most
   * `split` bytes, one piece per turn (1 = byte by byte, each byte on its own
   * turn). Unlike `chunkSize`, which splits within a turn, time can pass and
   * timers can fire between pieces. Default: whole writes, all in one turn.
   */
  split?: number;
  /**
   * Fault injection: seconds between turns (each turn is `callLater(delay)`
   * after the activity that asked for it). Default 0: the next reactor turn.
   */
  delay?: number;
}

/**
 * Two protocols connected in memory and pumped by the reactor, as Twisted's
 * `loopbackAsync`. The constructor calls `server.makeConnection` then
 * `client.makeConnection`; nothing is delivered from inside those calls, nor
 * ever from inside a protocol's own call: each turn runs from
 * `reactor.callLater(delay)`, scheduled when a side writes, closes, resumes
 * reading or (un)registers a producer.
 *
 * A turn delivers each direction's queued writes (as far as the receiver is
 * not paused; one piece of at most `split` bytes with that option), asks
 * drained producers for more (a pull producer once per drain, as over TCP),
 * carries out half-closes and closes, and schedules the next turn if
 * anything moved. An exception from a protocol callback is logged and breaks
 * the connection (`ConnectionLost` with the error as `cause`), as a real
 * transport drops it.
 */
export class AsyncLoopback {
  /** The server protocol's transport. */
  readonly serverTransport: FakeTransport;
  /** The client protocol's transport. */
  readonly clientTransport: FakeTransport;

  readonly #reactor: IReactorTime;
  readonly #chunkSize: number;
  readonly #pieces: number;
  readonly #delay: number;
  #call: IDelayedCall | null = null;
  #finished = false;
  readonly #waiters: Deferred<void>[] = [];
  readonly #turn = (): void => this.#runTurn();
  readonly #activity = (): void => this.#schedule();

  /**
   * Connects `server` and `client`.
   * @throws InvalidArgumentError for bad options (before anything is connected).
   * @throws whatever a `makeConnection` throws (no turn is left scheduled then).
   */
  constructor(server: IProtocol, client: IProtocol, options: LoopbackOptions = {}) {
    const split = checkCount(options.split, 'split');
    const delay = options.delay ?? 0;
    if (!(Number.isFinite(delay) && delay >= 0)) {
      throw new InvalidArgumentError(`delay must be a non-negative number of seconds: ${delay}`);
    }
    this.#reactor = options.reactor ?? defaultReactor;
    this.#chunkSize = split > 0 ? split : checkCount(options.chunkSize, 'chunkSize');
    this.#pieces = split > 0 ? 1 : Number.POSITIVE_INFINITY;
    this.#delay = delay;
    const hwm = options.highWaterMark ?? DEFAULT_HIGH_WATER;
    const s = new FakeTransport(server, true, SERVER_ADDRESS, CLIENT_ADDRESS, hwm);
    const c = new FakeTransport(client, false, CLIENT_ADDRESS, SERVER_ADDRESS, hwm);
    installDrop(c, s, options.drop, options.seed);
    this.serverTransport = s;
    this.clientTransport = c;
    for (const t of [s, c]) {
      t.pullPerDrain = true;
      t.onActivity = this.#activity;
    }
    try {
      server.makeConnection(s);
      client.makeConnection(c);
    } catch (e) {
      // Nothing may be left scheduled behind a constructor that throws.
      this.#finished = true;
      this.#call?.cancel();
      this.#call = null;
      throw e;
    }
  }

  /** `true` once both sides have lost the connection. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * A new Deferred that fires (with `undefined`) once both sides have lost
   * the connection, however it ended; at once if they already have.
   */
  whenDone(): Deferred<void> {
    const d = new Deferred<void>();
    if (this.#finished) d.callback(undefined);
    else this.#waiters.push(d);
    return d;
  }

  /**
   * Injects a network failure now: queued bytes are dropped and both
   * protocols get `connectionLost` with `reason` (default `ConnectionLost`),
   * synchronously, from inside this call. Does nothing once finished.
   */
  breakConnection(reason: Error = new ConnectionLost()): void {
    if (this.#finished) return;
    breakBoth(this.clientTransport, this.serverTransport, reason);
    this.#checkFinished();
  }

  #schedule(): void {
    if (this.#call === null && !this.#finished) {
      this.#call = this.#reactor.callLater(this.#delay, this.#turn);
    }
  }

  #runTurn(): void {
    this.#call = null;
    if (this.#finished) return;
    const c = this.clientTransport;
    const s = this.serverTransport;
    let moved = false;
    try {
      moved = deliver(c, s, this.#chunkSize, this.#pieces) || moved;
      moved = deliver(s, c, this.#chunkSize, this.#pieces) || moved;
      moved = c.drained() || moved;
      moved = s.drained() || moved;
      moved = halfClose(c, s) || moved;
      moved = halfClose(s, c) || moved;
      moved = closeIfReady(c, s) || moved;
    } catch (e) {
      err(e, 'Unhandled error in a loopback protocol');
      try {
        breakBoth(c, s, new ConnectionLost('a protocol callback raised an error', { cause: e }));
      } catch (e2) {
        err(e2, 'Unhandled error in a loopback protocol.connectionLost()');
      }
    }
    if (this.#checkFinished()) return;
    if (moved) this.#schedule();
  }

  #checkFinished(): boolean {
    if (this.#finished) return true;
    if (!(this.clientTransport.lost && this.serverTransport.lost)) return false;
    this.#finished = true;
    const call = this.#call;
    this.#call = null;
    if (call?.active()) call.cancel();
    for (const d of this.#waiters.splice(0)) d.callback(undefined);
    return true;
  }
}

/**
 * Connects `server` and `client` in memory and pumps bytes between them on
 * later reactor turns until both have lost the connection (Twisted's
 * `loopbackAsync`). Returns a Deferred that fires then, with `undefined`.
 * For `breakConnection()` or access to the transports, use
 * {@link AsyncLoopback} directly.
 *
 * ```ts
 * const clock = new Clock();
 * const done = loopbackAsync(new MyServer(), new MyClient(), { reactor: clock, split: 1 });
 * while (!done.called) clock.advance(0);
 * ```
 * @throws InvalidArgumentError for bad options.
 */
export function loopbackAsync(
  server: IProtocol,
  client: IProtocol,
  options: LoopbackOptions = {},
): Deferred<void> {
  return new AsyncLoopback(server, client, options).whenDone();
}
