/**
 * The options every WebSocket connection takes (server and client side),
 * checked once at the API edge and resolved into {@link ConnectionSettings}.
 *
 * Times here are in seconds, as everywhere in torsion (`callLater`, the
 * Site's timeouts); `ws`'s own close timer gets them converted.
 *
 * @module
 */

import type { ZlibOptions } from 'node:zlib';
import { InvalidArgumentError } from '../../reactor/errors.js';
import type { IReactorTime } from '../../reactor/interfaces.js';
import { reactor as defaultReactor } from '../../reactor/reactor.js';

/** Default largest message accepted (16 MiB); a bigger one closes the connection with 1009. */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024;
/** Default output queued for a peer beyond which it is dropped (16 MiB). */
export const DEFAULT_MAX_BUFFERED_AMOUNT = 16 * 1024 * 1024;
/** Default high-water mark of the output, for producers (64 KiB). */
export const DEFAULT_WS_HIGH_WATER_MARK = 64 * 1024;
/** Default keep-alive ping interval (20 s, as Python's `websockets`). */
export const DEFAULT_PING_INTERVAL = 20;
/** Default time a keep-alive ping waits for its pong (20 s). */
export const DEFAULT_PING_TIMEOUT = 20;
/** Default time a closing handshake may take before the socket is destroyed (10 s). */
export const DEFAULT_CLOSE_TIMEOUT = 10;

/**
 * permessage-deflate settings (RFC 7692), handed to `ws` as they are (the
 * same fields as `ws`'s own `PerMessageDeflateOptions`, declared here so the
 * public types do not need `@types/ws`).
 */
export interface PerMessageDeflateOptions {
  /** Ask for / agree to no context takeover on the server's messages. */
  serverNoContextTakeover?: boolean;
  /** Ask for / agree to no context takeover on the client's messages. */
  clientNoContextTakeover?: boolean;
  /** The largest LZ77 window (bits, 8–15) for the server's messages. */
  serverMaxWindowBits?: number;
  /** The largest LZ77 window (bits, 8–15) for the client's messages. */
  clientMaxWindowBits?: number;
  /** zlib options of the compressor. */
  zlibDeflateOptions?: ZlibOptions;
  /** zlib options of the decompressor. */
  zlibInflateOptions?: ZlibOptions;
  /** Messages smaller than this (bytes) are not compressed (`ws`'s default: 1024). */
  threshold?: number;
  /** Compression jobs run at once per process (`ws`'s default: 10). */
  concurrencyLimit?: number;
}

/** Options of one WebSocket connection, server or client side. */
export interface WebSocketConnectionOptions {
  /**
   * The largest message (after joining fragments and decompressing) the peer
   * may send, in bytes; a bigger one closes the connection with 1009 before
   * it is buffered. Default {@link DEFAULT_MAX_PAYLOAD} (16 MiB).
   */
  maxPayload?: number;
  /**
   * Negotiate permessage-deflate (`true`, or `ws`'s options object). Default
   * `false`: compression costs CPU and memory per connection.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /**
   * Keep-alive: after this many seconds (as everywhere in torsion, like
   * `callLater`) without hearing from the peer
   * (no message, ping or pong), send a ping. `0` turns keep-alive off.
   * Default {@link DEFAULT_PING_INTERVAL} (20 s).
   */
  pingInterval?: number;
  /**
   * Keep-alive: seconds a ping waits for the peer to show life (a pong
   * or any message) before the connection is dropped (destroyed; its
   * `connectionLost` has 1006 and a `TimeoutError` cause). Default
   * {@link DEFAULT_PING_TIMEOUT} (20 s).
   */
  pingTimeout?: number;
  /**
   * Seconds a closing handshake started by this side may take before
   * the socket is destroyed. Default {@link DEFAULT_CLOSE_TIMEOUT} (10 s).
   */
  closeTimeout?: number;
  /**
   * Slow-peer limit, in bytes: a message sent while more than this is
   * already queued for the peer (it does not read) is discarded and the
   * connection is closed with **1008** (policy violation; 1009 is about
   * messages *received*), with a `WebSocketOverflowError` cause. The queue
   * can thus reach this limit plus one message. `Infinity` turns it off.
   * Default {@link DEFAULT_MAX_BUFFERED_AMOUNT} (16 MiB).
   */
  maxBufferedAmount?: number;
  /**
   * Bytes queued above which a registered streaming producer is paused; it
   * is resumed at half of it. Default {@link DEFAULT_WS_HIGH_WATER_MARK}
   * (64 KiB).
   */
  highWaterMark?: number;
  /** Time for keep-alive and close timers (a `Clock` in tests). Default: the global reactor. */
  reactor?: IReactorTime;
}

/** {@link WebSocketConnectionOptions}, checked, with defaults; times in seconds. */
export interface ConnectionSettings {
  readonly reactor: IReactorTime;
  readonly maxPayload: number;
  readonly perMessageDeflate: boolean | PerMessageDeflateOptions;
  /** Seconds; 0 = off. */
  readonly pingInterval: number;
  /** Seconds. */
  readonly pingTimeout: number;
  /** Seconds. */
  readonly closeTimeout: number;
  /** Milliseconds, for `ws`'s own close timer. */
  readonly closeTimeoutMs: number;
  readonly maxBufferedAmount: number;
  readonly highWaterMark: number;
}

function checkNumber(
  where: string,
  name: string,
  value: unknown,
  fallback: number,
  allowZero: boolean,
  allowInfinity: boolean,
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== 'number' ||
    Number.isNaN(value) ||
    value < 0 ||
    (value === 0 && !allowZero) ||
    (!Number.isFinite(value) && !allowInfinity)
  ) {
    const range = `${allowZero ? 'a non-negative' : 'a positive'} ${allowInfinity ? 'number or Infinity' : 'finite number'}`;
    throw new InvalidArgumentError(`${where}: ${name} must be ${range}, got ${String(value)}`);
  }
  return value;
}

/**
 * Checks `options` and fills in the defaults.
 * @param where - names the API in error messages (`'WebSocketResource'`, `'connectWS'`).
 * @throws InvalidArgumentError for an option of the wrong type or range.
 */
export function resolveConnectionSettings(
  where: string,
  options: WebSocketConnectionOptions,
): ConnectionSettings {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`${where}: options must be an object`);
  }
  const maxPayload = checkNumber(
    where,
    'maxPayload',
    options.maxPayload,
    DEFAULT_MAX_PAYLOAD,
    false,
    false,
  );
  if (!Number.isInteger(maxPayload)) {
    throw new InvalidArgumentError(`${where}: maxPayload must be an integer, got ${maxPayload}`);
  }
  const pingInterval = checkNumber(
    where,
    'pingInterval',
    options.pingInterval,
    DEFAULT_PING_INTERVAL,
    true,
    false,
  );
  const pingTimeout = checkNumber(
    where,
    'pingTimeout',
    options.pingTimeout,
    DEFAULT_PING_TIMEOUT,
    false,
    false,
  );
  const closeTimeout = checkNumber(
    where,
    'closeTimeout',
    options.closeTimeout,
    DEFAULT_CLOSE_TIMEOUT,
    false,
    false,
  );
  const maxBufferedAmount = checkNumber(
    where,
    'maxBufferedAmount',
    options.maxBufferedAmount,
    DEFAULT_MAX_BUFFERED_AMOUNT,
    true,
    true,
  );
  const highWaterMark = checkNumber(
    where,
    'highWaterMark',
    options.highWaterMark,
    DEFAULT_WS_HIGH_WATER_MARK,
    true,
    false,
  );
  const deflate = options.perMessageDeflate ?? false;
  if (typeof deflate !== 'boolean' && (typeof deflate !== 'object' || deflate === null)) {
    throw new InvalidArgumentError(`${where}: perMessageDeflate must be a boolean or an object`);
  }
  const reactor = options.reactor ?? defaultReactor;
  if (typeof reactor !== 'object' || reactor === null || typeof reactor.callLater !== 'function') {
    throw new InvalidArgumentError(`${where}: reactor must provide callLater()`);
  }
  return {
    reactor,
    maxPayload,
    perMessageDeflate: deflate,
    pingInterval,
    pingTimeout,
    closeTimeout,
    closeTimeoutMs: closeTimeout * 1000,
    maxBufferedAmount,
    highWaterMark,
  };
}

/** A subprotocol name is an RFC 7230 token (what `ws` accepts). */
const SUBPROTOCOL = /^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/;

/**
 * Checks a list of subprotocol names (tokens, no duplicates).
 * @throws InvalidArgumentError otherwise.
 */
export function checkSubprotocols(where: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new InvalidArgumentError(`${where}: subprotocols must be an array of strings`);
  }
  const seen = new Set<string>();
  for (const name of value) {
    if (typeof name !== 'string' || !SUBPROTOCOL.test(name) || seen.has(name)) {
      throw new InvalidArgumentError(
        `${where}: invalid or duplicated subprotocol ${JSON.stringify(name)}`,
      );
    }
    seen.add(name);
  }
  return [...seen];
}

/** Whether `name` is a valid subprotocol token. */
export function isSubprotocolToken(name: string): boolean {
  return SUBPROTOCOL.test(name);
}
