/**
 * {@link WebSocketConnection}: the {@link WebSocketTransport} over one `ws`
 * `WebSocket` (server or client side). `ws` does the framing, masking,
 * compression and closing handshake; this class gives it torsion's
 * protocol model: method callbacks instead of events, producer/consumer
 * flow control both ways, keep-alive pings and a slow-peer limit on a
 * reactor's time, and `connectionLost` exactly once with a typed reason.
 *
 * Listeners are module-level functions that find their connection through
 * `ws[kConnection]` (as `ws` itself does with `this[kWebSocket]`): nothing
 * is allocated per connection for them, nor per message.
 *
 * Messages sent while the protocol handles a message that came in are
 * gathered: the socket is corked from the first delivery of a socket read
 * until a microtask after it, so replies to pipelined messages leave in one
 * `writev` (as the HTTP channel gathers pipelined responses), not one
 * system call each.
 *
 * Output flow control: every message is sent with one flush callback
 * (allocated once per connection), so the transport always knows when what
 * it queued has reached the kernel, even when `ws` holds frames back while it
 * compresses; no `'drain'` of the socket is needed.
 *
 * @module
 */

import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import {
  ConnectionAborted,
  ProducerAlreadyRegistered,
  TimeoutError,
} from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import type {
  IAddress,
  IDelayedCall,
  IPullProducer,
  IPushProducer,
} from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import {
  CloseCode,
  checkCloseArguments,
  checkPingData,
  WebSocketClosed,
  WebSocketOverflowError,
  wsStatusCode,
} from './errors.js';
import type { ConnectionSettings } from './options.js';
import type { SendMessageOptions, WebSocketProtocol, WebSocketTransport } from './protocol.js';

/** The `ws` property through which listeners find their {@link WebSocketConnection}. */
const kConnection: unique symbol = Symbol('torsion.websocket.connection');

type OwnedWebSocket = WebSocket & { [kConnection]?: WebSocketConnection };

/** Told when a connection has closed (after its protocol's `connectionLost`). Called once. */
export interface WebSocketConnectionOwner {
  connectionClosed(connection: WebSocketConnection): void;
}

/** What {@link WebSocketConnection.open} needs besides the `ws` and the protocol. */
export interface WebSocketConnectionInit {
  /** The resolved options. */
  readonly settings: ConnectionSettings;
  /** The remote end's address. */
  readonly peer: IAddress;
  /** This end's address. */
  readonly host: IAddress;
  /** Told once the connection has closed. */
  readonly owner: WebSocketConnectionOwner | null;
  /** The socket `ws` runs over (corked while replies to a read are gathered), if known. */
  readonly socket: Duplex | null;
}

// States.
const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;

// What the one timer of a connection is waiting for.
const T_NONE = 0;
/** Keep-alive: the next check for signs of life. */
const T_PING = 1;
/** Keep-alive: a ping was sent; the peer must show life before this fires. */
const T_PONG = 2;
/** Our closing handshake must finish before this fires. */
const T_CLOSE = 3;

/** `WebSocket.OPEN`. */
const WS_OPEN = 1;

const SEND_BINARY = Object.freeze({ binary: true });
const SEND_TEXT = Object.freeze({ binary: false });

let wsOnMessage: (this: OwnedWebSocket, data: RawData, isBinary: boolean) => void;
let wsOnPing: (this: OwnedWebSocket) => void;
let wsOnPong: (this: OwnedWebSocket, data: Buffer) => void;
let wsOnError: (this: OwnedWebSocket, error: Error) => void;
let wsOnClose: (this: OwnedWebSocket, code: number, reason: Buffer) => void;

/**
 * The transport of one open WebSocket (see {@link WebSocketTransport} for the
 * contract). Made by `WebSocketResource` and `connectWS` through
 * {@link WebSocketConnection.open}; users see it as `protocol.transport`.
 */
export class WebSocketConnection implements WebSocketTransport {
  readonly #ws: OwnedWebSocket;
  #protocol: WebSocketProtocol | null;
  #owner: WebSocketConnectionOwner | null;
  readonly #settings: ConnectionSettings;
  readonly #peer: IAddress;
  readonly #host: IAddress;
  readonly #socket: Duplex | null;
  /** The socket is corked until the microtask `#uncork` runs. */
  #corked = false;
  /** Uncorks the socket; allocated once per connection. */
  readonly #uncork: () => void;

  #state = OPEN;
  /** What made this side close or what broke the connection: the `cause` of the `WebSocketClosed`. */
  #cause: unknown = undefined;
  /** The code and reason of the close frame this side sent (or `ws` sent failing the connection). */
  #sentCode: number | null = null;
  #sentReason = '';
  /** `loseConnection()` waits for the producer to unregister. */
  #loseRequested = false;

  /** The protocol asked not to be given messages (`pauseProducing()`). */
  #readPaused = false;
  /** Messages `ws` had already parsed when reading paused, delivered on resume; `null` when none. */
  #pending: (Buffer | boolean)[] | null = null;
  /** Delivering `#pending` (guards re-entry from `resumeProducing()` inside `messageReceived`). */
  #draining = false;

  #producer: IPushProducer | IPullProducer | null = null;
  #streaming = false;
  /** We paused the streaming producer and owe it a `resumeProducing()`. */
  #producerPaused = false;
  /** The pull producer was asked for more and has not sent since. */
  #pullAsked = false;
  /** Messages sent whose flush callback has not come yet. */
  #flushPending = 0;
  /** The flush callback of every message sent, allocated once. */
  readonly #onSent: (error?: Error | null) => void;

  /** The connection's one timer: keep-alive or the close deadline (see `T_*`). */
  #timer: IDelayedCall | null = null;
  #timerKind = T_NONE;
  /** The peer showed life (a message, ping or pong) since the last keep-alive check. */
  #heard = false;

  private constructor(ws: WebSocket, protocol: WebSocketProtocol, init: WebSocketConnectionInit) {
    this.#ws = ws as OwnedWebSocket;
    this.#protocol = protocol;
    this.#settings = init.settings;
    this.#peer = init.peer;
    this.#host = init.host;
    this.#owner = init.owner;
    this.#socket = init.socket;
    this.#onSent = (error) => this.#sent(error);
    this.#uncork = () => {
      this.#corked = false;
      this.#socket!.uncork();
    };
    const w = this.#ws;
    w[kConnection] = this;
    w.on('message', wsOnMessage);
    w.on('ping', wsOnPing);
    w.on('pong', wsOnPong);
    w.on('error', wsOnError);
    w.on('close', wsOnClose);
  }

  /**
   * Wraps the open `ws` (its `'open'` has happened), connects `protocol`
   * (`makeConnection` → `connectionMade`) and starts keep-alive. The
   * protocol's `factory` and `request` must be set already. If
   * `connectionMade` throws, the error is logged and the connection closed
   * with 1011.
   */
  static open(
    ws: WebSocket,
    protocol: WebSocketProtocol,
    init: WebSocketConnectionInit,
  ): WebSocketConnection {
    const connection = new WebSocketConnection(ws, protocol, init);
    const settings = init.settings;
    if (settings.pingInterval > 0) connection.#arm(T_PING, settings.pingInterval);
    try {
      protocol.makeConnection(connection);
    } catch (e) {
      connection.#protocolFailed(e, 'connectionMade');
    }
    return connection;
  }

  // ------------------------------------------------------------------ ws listeners

  static {
    wsOnMessage = function wsOnMessage(this: OwnedWebSocket, data: RawData, isBinary: boolean) {
      const c = this[kConnection]!;
      c.#heard = true;
      // After our close (or a failure) messages are discarded, as a browser does.
      if (c.#state !== OPEN) return;
      // binaryType is 'nodebuffer': `data` is a Buffer (fragments already joined).
      if (c.#readPaused || c.#pending !== null) {
        if (c.#pending === null) c.#pending = [];
        c.#pending.push(data as Buffer, isBinary);
        return;
      }
      if (!c.#corked && c.#socket !== null) {
        // Gather what the protocol sends in reply to this read (see the module doc).
        c.#corked = true;
        c.#socket.cork();
        queueMicrotask(c.#uncork);
      }
      c.#deliver(data as Buffer, isBinary);
    };

    wsOnPing = function wsOnPing(this: OwnedWebSocket) {
      this[kConnection]!.#heard = true;
    };

    wsOnPong = function wsOnPong(this: OwnedWebSocket, data: Buffer) {
      const c = this[kConnection]!;
      c.#heard = true;
      const protocol = c.#protocol;
      if (protocol === null || typeof protocol.pongReceived !== 'function') return;
      try {
        protocol.pongReceived(data);
      } catch (e) {
        c.#protocolFailed(e, 'pongReceived');
      }
    };

    wsOnError = function wsOnError(this: OwnedWebSocket, error: Error) {
      // `ws` closes by itself after an error ('close' follows); keep the first as the cause.
      const c = this[kConnection]!;
      if (c.#cause === undefined) c.#cause = error;
      // A frame `ws` refused: it sends a close frame with this code.
      const status = wsStatusCode(error);
      if (status !== null && c.#sentCode === null) {
        c.#sentCode = status;
        c.#state = CLOSING;
        c.#pending = null;
      }
    };

    wsOnClose = function wsOnClose(this: OwnedWebSocket, code: number, reason: Buffer) {
      this[kConnection]!.#closed(code, reason.toString());
    };
  }

  static #timerFired(connection: WebSocketConnection): void {
    connection.#timer = null;
    connection.#onTimer();
  }

  // ------------------------------------------------------------------ output

  /** See {@link WebSocketTransport.sendMessage}. */
  sendMessage(data: Buffer | Uint8Array | string, options?: SendMessageOptions): boolean {
    const ws = this.#ws;
    // `ws` may be closing already (the peer's close frame came) before we hear of it.
    if (this.#state !== OPEN || ws.readyState !== WS_OPEN) return false;
    const max = this.#settings.maxBufferedAmount;
    if (max !== Number.POSITIVE_INFINITY) {
      const queued = ws.bufferedAmount;
      if (queued > max) {
        this.#overflow(queued, max);
        return false;
      }
    }
    let sendOptions: SendMessageOptions;
    if (options === undefined) {
      sendOptions = typeof data === 'string' ? SEND_TEXT : SEND_BINARY;
    } else {
      const binary = options.binary ?? typeof data !== 'string';
      sendOptions =
        options.compress === undefined
          ? binary
            ? SEND_BINARY
            : SEND_TEXT
          : { binary, compress: options.compress };
    }
    this.#flushPending++;
    this.#pullAsked = false;
    ws.send(data, sendOptions, this.#onSent);
    if (
      this.#streaming &&
      !this.#producerPaused &&
      ws.bufferedAmount > this.#settings.highWaterMark
    ) {
      this.#pauseProducer();
    }
    return true;
  }

  /** `IConsumer.write`: one message, as {@link sendMessage}. */
  write(data: Uint8Array | string): void {
    this.sendMessage(data);
  }

  /** See {@link WebSocketTransport.close}. */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    checkCloseArguments(code, reason);
    if (this.#state !== OPEN) return;
    this.#startClose(code, reason);
  }

  /** See {@link WebSocketTransport.ping}. */
  ping(data?: Uint8Array | string): void {
    checkPingData(data);
    if (this.#state !== OPEN) return;
    this.#ws.ping(data);
  }

  /** See {@link WebSocketTransport.loseConnection}. */
  loseConnection(): void {
    if (this.#state !== OPEN || this.#loseRequested) return;
    const producer = this.#producer;
    if (producer !== null && producer !== this) {
      this.#loseRequested = true;
      return;
    }
    this.#startClose(CloseCode.NORMAL, '');
  }

  /** See {@link WebSocketTransport.abortConnection}. */
  abortConnection(): void {
    if (this.#state === CLOSED) return;
    if (this.#cause === undefined) this.#cause = new ConnectionAborted();
    this.#terminate();
  }

  /** The remote end's address. */
  getPeer(): IAddress {
    return this.#peer;
  }

  /** This end's address. */
  getHost(): IAddress {
    return this.#host;
  }

  /** Bytes queued and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** The subprotocol agreed on, `''` if none. */
  get subprotocol(): string {
    return this.#ws.protocol;
  }

  /** The high-water mark (bytes) above which a streaming producer is paused. */
  get highWaterMark(): number {
    return this.#settings.highWaterMark;
  }

  /** `true` once closing started (or `loseConnection()` waits for the producer), and after the close. */
  get disconnecting(): boolean {
    return this.#state !== OPEN || this.#loseRequested;
  }

  // ------------------------------------------------------------------ IConsumer

  /**
   * Registers the producer that feeds this connection (see
   * {@link WebSocketTransport} for pause/resume). On a connection that is
   * closing or closed, the producer gets `stopProducing()` at once instead.
   * @throws ProducerAlreadyRegistered if a producer is registered.
   */
  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    if (this.#producer !== null) throw new ProducerAlreadyRegistered();
    if (this.#state !== OPEN) {
      stopProducer(producer);
      return;
    }
    this.#producer = producer;
    this.#streaming = streaming;
    this.#producerPaused = false;
    if (streaming) {
      // Only pause when a flush callback is still due to resume it.
      if (this.#flushPending > 0 && this.#ws.bufferedAmount > this.#settings.highWaterMark) {
        this.#pauseProducer();
      }
    } else {
      this.#pullAsked = true;
      callProducer(producer, 'resumeProducing');
    }
  }

  /**
   * Forgets the producer (it is not stopped). If `loseConnection()` waited
   * for it, the close starts now.
   */
  unregisterProducer(): void {
    if (this.#producer === null) return;
    this.#producer = null;
    this.#streaming = false;
    this.#producerPaused = false;
    this.#pullAsked = false;
    if (this.#loseRequested && this.#state === OPEN) this.#startClose(CloseCode.NORMAL, '');
  }

  // ------------------------------------------------------------------ IPushProducer (input)

  /**
   * Stops reading the socket; no `messageReceived` until `resumeProducing()`
   * (messages `ws` had already parsed wait here). Ignored once closing.
   */
  pauseProducing(): void {
    if (this.#state !== OPEN) return;
    this.#readPaused = true;
    this.#ws.pause();
  }

  /**
   * Undoes `pauseProducing()`: the messages held back are delivered now, in
   * order (unless the protocol pauses again), then reading resumes.
   */
  resumeProducing(): void {
    if (this.#state !== OPEN) return;
    this.#readPaused = false;
    if (this.#pending !== null) this.#drainPending();
    if (!this.#readPaused && this.#state === OPEN) this.#ws.resume();
  }

  /** Same as `loseConnection()`. */
  stopProducing(): void {
    this.loseConnection();
  }

  // ------------------------------------------------------------------ internals

  #deliver(data: Buffer, isBinary: boolean): void {
    try {
      this.#protocol!.messageReceived(isBinary ? data : data.toString(), isBinary);
    } catch (e) {
      this.#protocolFailed(e, 'messageReceived');
    }
  }

  #drainPending(): void {
    if (this.#draining) return;
    this.#draining = true;
    try {
      const pending = this.#pending!;
      let i = 0;
      while (i < pending.length && !this.#readPaused && this.#state === OPEN) {
        const data = pending[i] as Buffer;
        const isBinary = pending[i + 1] as boolean;
        i += 2;
        this.#deliver(data, isBinary);
      }
      if (this.#state !== OPEN) this.#pending = null;
      else if (i >= pending.length) this.#pending = null;
      else pending.splice(0, i);
    } finally {
      this.#draining = false;
    }
  }

  #startClose(code: number, reason: string): void {
    this.#state = CLOSING;
    this.#sentCode = code;
    this.#sentReason = reason;
    this.#pending = null;
    this.#readPaused = false;
    const producer = this.#producer;
    this.#dropProducer();
    if (producer !== null && producer !== this) stopProducer(producer);
    this.#ws.close(code, reason);
    // Read on: the peer's close frame must get through a paused socket.
    this.#ws.resume();
    this.#arm(T_CLOSE, this.#settings.closeTimeout);
  }

  /** Destroys the socket; `ws` emits 'close' later (never inside this call). */
  #terminate(): void {
    this.#state = CLOSING;
    this.#pending = null;
    this.#cancelTimer();
    this.#ws.terminate();
  }

  #overflow(queued: number, max: number): void {
    if (this.#cause === undefined) this.#cause = new WebSocketOverflowError(queued, max);
    this.#startClose(CloseCode.POLICY_VIOLATION, 'output buffer limit exceeded');
  }

  /** A protocol callback threw: log it, and close with 1011, as Twisted drops the connection. */
  #protocolFailed(error: unknown, where: string): void {
    err(error, `Unhandled error in WebSocket protocol.${where}()`);
    if (this.#cause === undefined) this.#cause = error;
    if (this.#state === OPEN) this.#startClose(CloseCode.INTERNAL_ERROR, 'internal error');
  }

  #pauseProducer(): void {
    this.#producerPaused = true;
    callProducer(this.#producer!, 'pauseProducing');
  }

  /** A message's flush callback: everything sent before it has reached the kernel (or failed). */
  #sent(error: Error | null | undefined): void {
    this.#flushPending--;
    if (error || this.#state === CLOSED) return;
    const producer = this.#producer;
    if (producer === null) return;
    if (this.#streaming) {
      if (
        this.#producerPaused &&
        (this.#flushPending === 0 || this.#ws.bufferedAmount <= this.#settings.highWaterMark / 2)
      ) {
        this.#producerPaused = false;
        callProducer(producer, 'resumeProducing');
      }
    } else if (!this.#pullAsked && this.#flushPending === 0) {
      this.#pullAsked = true;
      callProducer(producer, 'resumeProducing');
    }
  }

  #dropProducer(): void {
    this.#producer = null;
    this.#streaming = false;
    this.#producerPaused = false;
    this.#pullAsked = false;
  }

  #arm(kind: number, seconds: number): void {
    this.#cancelTimer();
    this.#timerKind = kind;
    this.#timer = this.#settings.reactor.callLater(seconds, WebSocketConnection.#timerFired, this);
  }

  #cancelTimer(): void {
    const timer = this.#timer;
    this.#timer = null;
    this.#timerKind = T_NONE;
    if (timer?.active()) timer.cancel();
  }

  #onTimer(): void {
    const settings = this.#settings;
    const kind = this.#timerKind;
    this.#timerKind = T_NONE;
    if (this.#state === CLOSED) return;
    if (kind === T_CLOSE) {
      if (this.#cause === undefined) {
        this.#cause = new TimeoutError(
          `the closing handshake did not finish within ${settings.closeTimeout} s`,
        );
      }
      this.#terminate();
      return;
    }
    if (this.#state !== OPEN) return;
    if (this.#heard) {
      // Traffic proves the peer alive: no ping needed this round.
      this.#heard = false;
      this.#arm(T_PING, settings.pingInterval);
    } else if (kind === T_PING) {
      this.#ws.ping();
      this.#arm(T_PONG, settings.pingTimeout);
    } else {
      this.#cause = new TimeoutError(
        `keep-alive: no answer to a ping within ${settings.pingTimeout} s`,
      );
      this.#terminate();
    }
  }

  /** `ws` emitted 'close': the socket is gone. Runs once; tells the protocol, then the owner. */
  #closed(code: number, reason: string): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#cancelTimer();
    this.#pending = null;
    const protocol = this.#protocol;
    const producer = this.#producer;
    const owner = this.#owner;
    this.#protocol = null;
    this.#owner = null;
    this.#dropProducer();
    if (producer !== null && producer !== this) stopProducer(producer);
    const cause = this.#cause;
    // No close frame from the peer: report the one we sent, if any (see WebSocketClosed).
    const received = code !== CloseCode.ABNORMAL;
    const sent = this.#sentCode;
    const closed =
      received || sent === null
        ? new WebSocketClosed(code, reason, { cause })
        : new WebSocketClosed(sent, this.#sentReason, { cause, wasClean: false });
    if (protocol !== null) {
      try {
        protocol.connectionLost(new Failure(closed));
      } catch (e) {
        err(e, 'Unhandled error in WebSocket protocol.connectionLost()');
      }
    }
    if (owner !== null) {
      try {
        owner.connectionClosed(this);
      } catch (e) {
        err(e, 'Unhandled error in connectionClosed()');
      }
    }
  }
}

function callProducer(
  producer: IPushProducer | IPullProducer,
  method: 'pauseProducing' | 'resumeProducing',
): void {
  try {
    (producer as IPushProducer)[method]();
  } catch (e) {
    err(e, `Unhandled error in producer.${method}()`);
  }
}

function stopProducer(producer: IPushProducer | IPullProducer): void {
  try {
    producer.stopProducing();
  } catch (e) {
    err(e, 'Unhandled error in producer.stopProducing()');
  }
}
