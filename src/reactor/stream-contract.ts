/**
 * What surrounds a {@link StreamTransport}: the owner that keeps book of
 * it ({@link ConnectionOwner}), its options, the protocols that stand in
 * when there is none, and two small helpers every transport needs (stop a
 * producer, logging what it throws; keep a late socket error from crashing
 * the process).
 *
 * @module
 */

import type { Socket } from 'node:net';
import type { Failure } from './failure.js';
import type { IAddress, IProtocol, IPullProducer, IPushProducer } from './interfaces.js';
import { err } from './log.js';
import type { StreamTransport } from './stream.js';

/** Default high-water mark of the write buffer, in bytes (64 KiB). */
export const DEFAULT_HIGH_WATER_MARK = 64 * 1024;

/**
 * Whoever created a transport (a listening port, a connector) and keeps
 * book of it. Each hook is called at most once per transport:
 * `connectionStarted`, then one of `connectionClosed` or `connectionDetached`.
 */
export interface ConnectionOwner {
  /**
   * The transport was created; called by {@link StreamTransport.attach} right
   * before the protocol's `makeConnection`, so the owner knows the transport
   * if the protocol closes or detaches it from `connectionMade`.
   */
  connectionStarted(transport: StreamTransport): void;

  /**
   * The connection closed; called right after the protocol's
   * `connectionLost(reason)` returned (or threw), with the same `reason`.
   */
  connectionClosed(transport: StreamTransport, reason: Failure): void;

  /** The socket was taken away with {@link StreamTransport.detach}. */
  connectionDetached(transport: StreamTransport): void;
}

/** Options of {@link StreamTransport.attach}. */
export interface StreamTransportOptions {
  /** The remote end's address (what `getPeer()` returns). */
  readonly peer: IAddress;
  /**
   * This end's address (what `getHost()` returns). When omitted, it is read
   * from `socket.address()` on first use (TCP).
   */
  readonly host?: IAddress;
  /** Told when the connection closes or is detached. */
  readonly owner?: ConnectionOwner | null;
  /**
   * Bytes of unflushed writes above which a streaming producer is paused
   * (default {@link DEFAULT_HIGH_WATER_MARK}).
   */
  readonly highWaterMark?: number;
}

/** Stands in for the protocol once the transport has let go of it. */
export const NULL_PROTOCOL: IProtocol = {
  makeConnection() {},
  connectionMade() {},
  dataReceived() {},
  connectionLost() {},
};

/**
 * A protocol that only ignores what it is told. Used where a connection was
 * made but the factory returned no protocol (the connection is then closed).
 */
export class NullProtocol implements IProtocol {
  /** Does nothing. */
  makeConnection(): void {}
  /** Does nothing. */
  connectionMade(): void {}
  /** Discards the data. */
  dataReceived(_data: Buffer): void {}
  /** Does nothing. */
  connectionLost(_reason: Failure): void {}
}

/** The `readConnectionLost` / `writeConnectionLost` hooks, when a protocol has them. */
export type HalfCloseHooks = {
  readConnectionLost?: unknown;
  writeConnectionLost?: unknown;
};

/** `producer.stopProducing()`, logging what it throws. */
export function stopProducer(producer: IPushProducer | IPullProducer): void {
  try {
    producer.stopProducing();
  } catch (e) {
    err(e, 'Unhandled error in producer.stopProducing()');
  }
}

function noop(): void {}

/** Attached to sockets nobody owns any more, so a late 'error' cannot crash the process. */
export function ignoreSocketErrors(socket: Socket): void {
  socket.on('error', noop);
}
