/**
 * Resource-limiting and debugging policies, as Twisted's
 * `twisted.protocols.policies`: factories that wrap another factory and its
 * protocols.
 *
 * - {@link ProtocolWrapper} / {@link WrappingFactory}: the wrapping machinery
 *   (from `wrapping.ts`).
 * - {@link ThrottlingFactory}: bytes-per-second and connection-count limits
 *   (from `throttling.ts`).
 * - {@link TimeoutFactory} and the {@link ProtocolTimeout} helper: idle
 *   timeouts (from `timeout.ts`).
 * - {@link LimitConnectionsByPeer}, {@link LimitTotalConnectionsFactory}:
 *   connection limits per peer host and in total.
 * - {@link SpewingFactory}: logs every read and write, for debugging.
 *
 * @module
 */

import { IPv4Address, IPv6Address, UNIXAddress } from '../reactor/address.js';
import { InvalidArgumentError } from '../reactor/errors.js';
import type { IAddress, IProtocol, IProtocolFactory } from '../reactor/interfaces.js';
import { msg } from '../reactor/log.js';
import { ProtocolWrapper, WrappingFactory } from './wrapping.js';

export {
  ThrottlingFactory,
  type ThrottlingOptions,
  ThrottlingProtocol,
} from './throttling.js';
export {
  ProtocolTimeout,
  type ProtocolTimeoutOptions,
  TimeoutFactory,
  type TimeoutFactoryOptions,
  type TimeoutOwner,
  type TimeoutPeriod,
  TimeoutProtocol,
} from './timeout.js';
export { type IWrapperRegistry, ProtocolWrapper, WrappingFactory } from './wrapping.js';

function checkCount(value: number, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${what} must be a non-negative integer, not ${String(value)}`);
  }
  return value;
}

// ====================================================================== LimitConnectionsByPeer

/**
 * The key connections are counted under: the host of an IP address; every
 * UNIX-domain peer shares one key (their addresses are unnamed).
 */
export function peerKey(addr: IAddress): string {
  if (addr instanceof IPv4Address || addr instanceof IPv6Address) return addr.host;
  if (addr instanceof UNIXAddress) return 'unix';
  const host = (addr as { host?: unknown }).host;
  return typeof host === 'string' ? host : String(addr);
}

/**
 * Allows at most `maxConnectionsPerPeer` simultaneous connections from one
 * peer host (Twisted's `LimitConnectionsByPeer`): `buildProtocol` returns
 * `null` (the connection is closed at once) for a host at its limit. A
 * connection counts from `buildProtocol` until its `connectionLost` (or
 * `detach`).
 */
export class LimitConnectionsByPeer<
  F extends IProtocolFactory = IProtocolFactory,
> extends WrappingFactory<F> {
  /** The most simultaneous connections from one host. */
  readonly maxConnectionsPerPeer: number;
  /** Open connections per peer key (see {@link peerKey}); hosts with none are absent. */
  readonly peerConnections = new Map<string, number>();
  // Weak: a wrapper built but never connected must not be kept alive here.
  readonly #keys = new WeakMap<ProtocolWrapper, string>();

  /** @throws InvalidArgumentError if the limit is not a non-negative integer. */
  constructor(wrappedFactory: F, maxConnectionsPerPeer = 5) {
    super(wrappedFactory);
    this.maxConnectionsPerPeer = checkCount(maxConnectionsPerPeer, 'maxConnectionsPerPeer');
  }

  /** A wrapped protocol, or `null` if `addr`'s host is at its limit or the wrapped factory refuses. */
  override buildProtocol(addr: IAddress): ProtocolWrapper | null {
    const key = peerKey(addr);
    const count = this.peerConnections.get(key) ?? 0;
    if (count >= this.maxConnectionsPerPeer) return null;
    const protocol = super.buildProtocol(addr);
    if (protocol === null) return null;
    this.peerConnections.set(key, count + 1);
    this.#keys.set(protocol, key);
    return protocol;
  }

  /** Removes the wrapper and gives its host one connection back. */
  override unregisterProtocol(wrapper: ProtocolWrapper): void {
    super.unregisterProtocol(wrapper);
    const key = this.#keys.get(wrapper);
    if (key === undefined) return;
    this.#keys.delete(wrapper);
    const left = (this.peerConnections.get(key) ?? 1) - 1;
    if (left <= 0) this.peerConnections.delete(key);
    else this.peerConnections.set(key, left);
  }
}

// ====================================================================== LimitTotalConnectionsFactory

/** A protocol class with a no-argument constructor (the overflow protocol). */
export type OverflowProtocolClass = new () => IProtocol;

/**
 * Limits the number of simultaneous connections (Twisted's
 * `LimitTotalConnectionsFactory`). Below `connectionLimit` connections, new
 * connections get the wrapped factory's protocol. At the limit, they get a
 * new `overflowProtocol` (its `factory` is set to this factory, e.g. to
 * write "busy" and close) when one is given, or are refused (`null`:
 * closed at once). Overflow connections count too. A connection counts from
 * `buildProtocol` until its `connectionLost` (or `detach`). A
 * `connectionLimit` of `null` means no limit.
 */
export class LimitTotalConnectionsFactory<
  F extends IProtocolFactory = IProtocolFactory,
> extends WrappingFactory<F> {
  /** Open connections (normal and overflow). */
  connectionCount = 0;
  /** The most normal connections at once, or `null` for no limit. */
  readonly connectionLimit: number | null;
  /** What connections beyond the limit get, or `null` to refuse them. */
  readonly overflowProtocol: OverflowProtocolClass | null;

  /** @throws InvalidArgumentError if `connectionLimit` is not a non-negative integer or null. */
  constructor(
    wrappedFactory: F,
    connectionLimit: number | null = null,
    overflowProtocol: OverflowProtocolClass | null = null,
  ) {
    super(wrappedFactory);
    this.connectionLimit =
      connectionLimit === null ? null : checkCount(connectionLimit, 'connectionLimit');
    this.overflowProtocol = overflowProtocol;
  }

  /** See the class documentation. */
  override buildProtocol(addr: IAddress): ProtocolWrapper | null {
    let wrapped: IProtocol | null;
    if (this.connectionLimit === null || this.connectionCount < this.connectionLimit) {
      wrapped = this.wrappedFactory.buildProtocol(addr);
    } else if (this.overflowProtocol === null) {
      return null;
    } else {
      wrapped = new this.overflowProtocol();
      if ('factory' in wrapped) (wrapped as { factory: unknown }).factory = this;
    }
    if (wrapped === null) return null;
    const protocol = this.wrapProtocol(wrapped, addr);
    this.connectionCount++;
    return protocol;
  }

  /** Removes the wrapper and frees its place. */
  override unregisterProtocol(wrapper: ProtocolWrapper): void {
    super.unregisterProtocol(wrapper);
    if (this.connectionCount > 0) this.connectionCount--;
  }
}

// ====================================================================== SpewingFactory

/** Options of {@link SpewingFactory}. */
export interface SpewingOptions {
  /** Put at the start of every line (default `'spew'`). */
  prefix?: string;
  /** Where lines go (default: `log.msg`). */
  log?: (line: string) => void;
}

function describePeer(addr: IAddress): string {
  if (addr instanceof IPv4Address) return `${addr.host}:${addr.port}`;
  if (addr instanceof IPv6Address) return `[${addr.host}]:${addr.port}`;
  return String(addr);
}

function repr(data: Uint8Array | string): string {
  if (typeof data === 'string') return JSON.stringify(data);
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
  // latin1 maps each byte to one char; JSON escapes the control bytes.
  return JSON.stringify(buf.toString('latin1'));
}

/**
 * Logs every chunk received and written, then relays it (Twisted's
 * `SpewingProtocol`). Lines read `PREFIX PEER Received: "…"` and
 * `PREFIX PEER Sending: "…"`, the bytes shown as a JSON string of their
 * latin-1 characters (control bytes escaped). For debugging only: it
 * formats every chunk.
 */
export class SpewingProtocol<P extends IProtocol = IProtocol> extends ProtocolWrapper<P> {
  declare factory: SpewingFactory;

  override dataReceived(data: Buffer): void {
    this.#spew('Received', data);
    super.dataReceived(data);
  }

  override write(data: Uint8Array | string): void {
    this.#spew('Sending', data);
    super.write(data);
  }

  override writeSequence(data: ReadonlyArray<Uint8Array | string>): void {
    for (const chunk of data) this.#spew('Sending', chunk);
    super.writeSequence(data);
  }

  #spew(what: string, data: Uint8Array | string): void {
    const factory = this.factory;
    factory.log(`${factory.prefix} ${describePeer(this.getPeer())} ${what}: ${repr(data)}`);
  }
}

/** Wraps a factory so that every read and write of its connections is logged. */
export class SpewingFactory<F extends IProtocolFactory = IProtocolFactory> extends WrappingFactory<
  F,
  SpewingProtocol
> {
  /** Put at the start of every line. */
  readonly prefix: string;
  /** Where lines go. */
  readonly log: (line: string) => void;

  constructor(wrappedFactory: F, options: SpewingOptions = {}) {
    super(wrappedFactory);
    this.prefix = options.prefix ?? 'spew';
    this.log = options.log ?? msg;
  }

  protected override wrapProtocol(wrapped: IProtocol, _addr: IAddress): SpewingProtocol {
    return new SpewingProtocol(this, wrapped);
  }
}
