/**
 * The WebSocket protocol model, in Twisted's shape: {@link WebSocketProtocol}
 * (what a user subclasses, like `Protocol`, with whole messages instead of
 * bytes), {@link WebSocketFactory} (builds one protocol per connection, like
 * `Factory`), and {@link WebSocketTransport} (what `this.transport` offers).
 *
 * The same classes serve both ends: `WebSocketResource` builds server-side
 * protocols, `connectWS` client-side ones.
 *
 * @module
 */

import { BaseFactory, withProtocol } from '../../protocols/base-factory.js';
import type { Failure } from '../../reactor/failure.js';
import type { IAddress, IConsumer, IPushProducer } from '../../reactor/interfaces.js';
import type { WebSocketClosed } from './errors.js';
import type { WebSocketRequestInfo } from './request-info.js';

/** Options of {@link WebSocketTransport.sendMessage}. */
export interface SendMessageOptions {
  /**
   * Send a binary frame (`true`) or a text frame (`false`). Default: text for
   * a string, binary for bytes. Bytes sent as text must be valid UTF-8 (the
   * peer closes with 1007 otherwise); a string sent as binary goes as its
   * UTF-8 bytes.
   */
  binary?: boolean;
  /**
   * Compress this message when permessage-deflate was negotiated (default
   * `true` then; ignored otherwise).
   */
  compress?: boolean;
}

/**
 * One WebSocket connection, as its protocol sees it (`this.transport`).
 *
 * An {@link IConsumer} of its output, with a message as the unit: a
 * registered streaming producer is paused when {@link bufferedAmount} passes
 * the connection's high-water mark and resumed once it has fallen to half of
 * it (or everything sent has been flushed); a pull producer gets
 * `resumeProducing()` at registration and again each time everything sent
 * since has been flushed. An {@link IPushProducer} of its input:
 * `pauseProducing()` stops reading the socket (the peer is then held back by
 * TCP) and no `messageReceived` is delivered until `resumeProducing()`.
 *
 * States, in order: open → closing (`close()`, `loseConnection()`, an error,
 * a dead peer, or the peer's close frame) → closed (the protocol's
 * `connectionLost`, exactly once). While closing, nothing more is sent and
 * messages that still arrive are discarded.
 */
export interface WebSocketTransport extends IConsumer, IPushProducer {
  /**
   * Queues one message: a string as a text frame, bytes as a binary frame
   * (see {@link SendMessageOptions}). Returns `true` if it was queued, and
   * `false` if it was discarded because the connection is closing or closed
   * (as a browser's `WebSocket.send` after `close()`, this does not throw),
   * or because the peer was found not reading: more than the connection's
   * `maxBufferedAmount` bytes were already queued, and the connection is
   * then closed with 1008 (its `connectionLost` carries a
   * `WebSocketOverflowError` as the cause). May pause the registered
   * streaming producer (see the interface documentation).
   */
  sendMessage(data: Buffer | Uint8Array | string, options?: SendMessageOptions): boolean;

  /** `IConsumer.write`: one message per call, as `sendMessage(data)` (strings as text). */
  write(data: Uint8Array | string): void;

  /**
   * Starts the closing handshake: sends a close frame with `code` (default
   * 1000) and `reason` (default `''`) after the queued messages, and stops
   * the registered producer (`stopProducing()`). `connectionLost` follows
   * when the peer has answered and the socket closed, or after the
   * connection's `closeTimeout` (then the socket is destroyed and the
   * `WebSocketClosed` has a `TimeoutError` cause). Does nothing once the
   * connection is closing or closed.
   * @throws InvalidArgumentError if `code` is not a code that may be sent
   *   (1000–1003, 1007–1014, 3000–4999) or `reason` is longer than 123
   *   bytes of UTF-8.
   */
  close(code?: number, reason?: string): void;

  /**
   * Sends a ping (with up to 125 bytes of `data`); the peer's pong reaches
   * the protocol's `pongReceived`, if it has one. Does nothing once the
   * connection is closing or closed.
   * @throws InvalidArgumentError if `data` is longer than 125 bytes.
   */
  ping(data?: Uint8Array | string): void;

  /**
   * Closes cleanly with 1000, as `close()`, except that a registered producer
   * (other than this transport itself) is waited for: the close starts when
   * it unregisters. Idempotent.
   */
  loseConnection(): void;

  /**
   * Destroys the socket at once, without a closing handshake. The protocol's
   * `connectionLost` (1006, `ConnectionAborted` cause) follows from the
   * socket's event, never inside this call. Does nothing once closed.
   */
  abortConnection(): void;

  /** The remote end's address. */
  getPeer(): IAddress;
  /** This end's address. */
  getHost(): IAddress;

  /** Bytes queued and not yet handed to the kernel (`ws`'s `bufferedAmount`). */
  readonly bufferedAmount: number;
  /** The subprotocol agreed on in the handshake, `''` if none. */
  readonly subprotocol: string;
  /** The high-water mark (bytes) above which a streaming producer is paused. */
  readonly highWaterMark: number;
  /** `true` once closing started (or `loseConnection()` waits for the producer), and after the close. */
  readonly disconnecting: boolean;
}

/**
 * The base class of WebSocket protocols: override {@link connectionMade},
 * {@link messageReceived} and {@link connectionLost} (no-ops here), and
 * define `pongReceived(data)` to hear pongs.
 *
 * Call order, for each connection: the factory's `buildProtocol(request)`
 * (which sets {@link factory} and {@link request}), then
 * `makeConnection(transport)` → `connectionMade()` once, then
 * `messageReceived` for each whole message (fragmented messages are joined;
 * never re-entrantly; not while the transport is paused), then
 * `connectionLost(reason)` exactly once. An exception from a callback is
 * logged and the connection is closed with 1011 (internal error).
 *
 * @example
 * ```ts
 * class Echo extends WebSocketProtocol {
 *   override messageReceived(data: Buffer | string): void {
 *     this.transport.sendMessage(data);
 *   }
 * }
 * root.putChild('echo', new WebSocketResource(WebSocketFactory.forProtocol(Echo)));
 * ```
 */
export class WebSocketProtocol {
  /**
   * The connection, set by `makeConnection` before `connectionMade`; it
   * stays set after `connectionLost` (sending then does nothing).
   */
  transport!: WebSocketTransport;

  /** The factory that built this protocol (set by `buildProtocol`, or by the resource/`connectWS`). */
  factory!: WebSocketFactory;

  /** The opening handshake this connection came from (set before `makeConnection`). */
  request!: WebSocketRequestInfo;

  /** `true` once `makeConnection` has run. */
  connected = false;

  /**
   * The peer answered a ping (ours, or an unsolicited pong) with `data`.
   * Optional: define it in a subclass. Keep-alive pings are sent by the
   * transport itself; their pongs arrive here too.
   */
  pongReceived?(data: Buffer): void;

  /** Attaches `transport`, sets `connected`, calls `connectionMade()`. Called once, by the transport. */
  makeConnection(transport: WebSocketTransport): void {
    this.connected = true;
    this.transport = transport;
    this.connectionMade();
  }

  /** The connection is open and `this.transport` is set. No-op by default. */
  connectionMade(): void {}

  /**
   * A whole message arrived: a text message as a `string` (`isBinary`
   * false), a binary one as a `Buffer` (which may be a view of a larger
   * buffer; it is the protocol's to keep). No-op by default.
   */
  messageReceived(_data: Buffer | string, _isBinary: boolean): void {}

  /**
   * The connection closed; `reason.value` is a {@link WebSocketClosed} with
   * the close code, the reason and, when this side closed or something
   * broke, a `cause`. Called exactly once. No-op by default.
   */
  connectionLost(_reason: Failure<WebSocketClosed>): void {}
}

/** A protocol class: anything `new`-able that makes WebSocket protocols. */
export type WebSocketProtocolClass<P extends WebSocketProtocol = WebSocketProtocol> = new (
  ...args: never[]
) => P;

/**
 * Builds one {@link WebSocketProtocol} per connection (Twisted's `Factory`,
 * given the handshake instead of an address).
 *
 * `buildProtocol(request)` instantiates {@link protocol} with
 * {@link protocolArgs}, sets the instance's `factory` and `request`, and
 * returns it; override it to choose per request, and return `null` to refuse
 * (the server answers 403; `connectWS` fails). Its users call `doStart()`
 * when they start using the factory and `doStop()` when they stop (a
 * `WebSocketResource`: at its first connection, and at its `shutdown()`;
 * `connectWS`: when connecting, and once the connection attempt failed or the
 * connection closed); the factory counts them in `numPorts` and calls
 * `startFactory()` on the first start and `stopFactory()` on the last stop.
 *
 * Shared state of all connections (a chat room) belongs on a subclass of
 * the factory; protocols reach it through `this.factory`.
 *
 * @typeParam P - the protocol type `buildProtocol` returns.
 */
export class WebSocketFactory<
  P extends WebSocketProtocol = WebSocketProtocol,
> extends BaseFactory<P> {
  /** A new factory of this class whose `buildProtocol` makes `new protocol(...args)`. */
  static forProtocol<P extends WebSocketProtocol, A extends unknown[]>(
    this: new () => WebSocketFactory<NoInfer<P>>,
    protocol: new (...args: A) => P,
    ...args: A
  ): WebSocketFactory<P> {
    return withProtocol(new this(), protocol, args);
  }

  /**
   * A new protocol for the connection whose opening handshake is `request`,
   * with `factory` and `request` set; or `null` to refuse it. Called by the
   * server before it answers the handshake (after the origin and
   * subprotocol checks), by `connectWS` once the handshake succeeded. A
   * throw is an error answer (the server: 500, or the status of an
   * `HTTPException`; `connectWS`: its Deferred fails with the error). On the
   * server, a protocol built for an upgrade that then fails (the client
   * went away, or `ws` refused its extension offer: see
   * `WebSocketResource`) is dropped without any callback.
   * @throws InvalidArgumentError if {@link protocol} is not set.
   */
  buildProtocol(request: WebSocketRequestInfo): P | null {
    const protocol = this.instantiateProtocol();
    protocol.factory = this as unknown as WebSocketFactory;
    protocol.request = request;
    return protocol;
  }
}

/** Wraps a `() => P` given to `connectWS` so that every protocol has a factory. */
export class CallbackWebSocketFactory<P extends WebSocketProtocol> extends WebSocketFactory<P> {
  readonly #make: () => P;

  constructor(make: () => P) {
    super();
    this.#make = make;
  }

  /** `make()`, with `factory` and `request` set. */
  override buildProtocol(request: WebSocketRequestInfo): P | null {
    const protocol = this.#make();
    if (protocol === null || protocol === undefined) return null;
    protocol.factory = this as unknown as WebSocketFactory;
    protocol.request = request;
    return protocol;
  }
}
