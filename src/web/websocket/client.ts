/**
 * {@link connectWS}: the WebSocket client, with the same protocol classes as
 * the server. `ws`'s `WebSocket` makes the connection and the handshake;
 * once it is open the connection is a `WebSocketConnection`, exactly as on
 * the server side.
 *
 * @module
 */

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import { WebSocket, type PerMessageDeflateOptions as WsDeflateOptions } from 'ws';
import { inetAddress } from '../../reactor/address.js';
import { Deferred } from '../../reactor/deferred.js';
import {
  ConnectError,
  ConnectionRefusedError,
  ConnectTimeoutError,
  DNSLookupError,
  InvalidArgumentError,
} from '../../reactor/errors.js';
import type { IAddress, IDelayedCall } from '../../reactor/interfaces.js';
import { Headers } from '../http/headers.js';
import { WebSocketConnection, type WebSocketConnectionOwner } from './connection.js';
import { WebSocketHandshakeError } from './errors.js';
import {
  type ConnectionSettings,
  checkSubprotocols,
  resolveConnectionSettings,
  type WebSocketConnectionOptions,
} from './options.js';
import { CallbackWebSocketFactory, WebSocketFactory, type WebSocketProtocol } from './protocol.js';
import { WebSocketRequestInfo } from './request-info.js';

/** Default time the opening handshake may take (30 s). */
export const DEFAULT_WS_HANDSHAKE_TIMEOUT = 30;

/** Options of {@link connectWS}; times in seconds. */
export interface ConnectWSOptions extends WebSocketConnectionOptions {
  /** Subprotocols to offer, most preferred first; the server must choose one of them. */
  subprotocols?: string[];
  /** Extra request headers (e.g. `Cookie`, `Authorization`). */
  headers?: Record<string, string>;
  /** The `Origin` header to send (browsers send their page's origin). */
  origin?: string;
  /**
   * Seconds from the call until the connection is open; then the attempt is
   * abandoned and the Deferred fails with `ConnectTimeoutError`. Default
   * {@link DEFAULT_WS_HANDSHAKE_TIMEOUT} (30 s).
   */
  handshakeTimeout?: number;
  /** TLS settings for `wss:` (trusted CAs, client certificate, `rejectUnauthorized`, `servername`). */
  tls?: SecureContextOptions & { rejectUnauthorized?: boolean; servername?: string };
}

/**
 * Opens a WebSocket connection to `url` (`ws:`, `wss:`, or `http:`/`https:`
 * taken as such) and connects a protocol to it.
 *
 * The protocol comes from `factory`: a {@link WebSocketFactory} (its
 * `buildProtocol(request)` runs once the handshake succeeded; `doStart()`
 * is called now, `doStop()` once the attempt failed or the connection
 * closed), or a function returning a new protocol (wrapped in a factory, so
 * `protocol.factory` is always set). `protocol.request` describes the
 * request this side sent, with the server's answer in `responseHeaders`.
 *
 * The Deferred fires with the protocol once it is connected (its
 * `connectionMade` has run). It fails with:
 * - `ConnectionRefusedError`, `DNSLookupError` or another `ConnectError`
 *   (with the system error as `cause`) when no connection could be made;
 * - `WebSocketHandshakeError` when the server did not accept: `status` is
 *   its HTTP status (e.g. 403, 426), 101 for an invalid acceptance (a wrong
 *   `Sec-WebSocket-Accept`, a subprotocol not offered), `null` when the
 *   connection closed first or the answer was not HTTP at all;
 * - `ConnectTimeoutError` after `handshakeTimeout`;
 * - the error `buildProtocol` threw, or a `ConnectError` if it returned
 *   `null` (the connection is then dropped);
 * - `CancelledError` when cancelled before it fired (the attempt is
 *   abandoned and its socket destroyed).
 *
 * @throws InvalidArgumentError (at once) for a URL that is not a WebSocket
 *   URL, a bad factory, or a bad option.
 */
export function connectWS<P extends WebSocketProtocol>(
  url: string,
  factory: WebSocketFactory<P> | (() => P),
  options: ConnectWSOptions = {},
): Deferred<P> {
  const settings = resolveConnectionSettings('connectWS', options);
  const subprotocols = checkSubprotocols('connectWS', options.subprotocols);
  const timeout = options.handshakeTimeout ?? DEFAULT_WS_HANDSHAKE_TIMEOUT;
  if (typeof timeout !== 'number' || !(timeout > 0) || !Number.isFinite(timeout)) {
    throw new InvalidArgumentError(
      `connectWS: handshakeTimeout must be a positive number, got ${String(timeout)}`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError(`connectWS: invalid URL ${JSON.stringify(url)}`);
  }
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(parsed.protocol) || parsed.hash !== '') {
    throw new InvalidArgumentError(
      `connectWS: ${JSON.stringify(url)} is not a ws:, wss:, http: or https: URL without a fragment`,
    );
  }
  let builder: WebSocketFactory<P>;
  if (factory instanceof WebSocketFactory) {
    builder = factory;
  } else if (typeof factory === 'function') {
    builder = new CallbackWebSocketFactory(factory as () => P);
  } else {
    throw new InvalidArgumentError(
      'connectWS: factory must be a WebSocketFactory or a function returning a protocol',
    );
  }
  const sentHeaders = new Headers(options.headers ?? {});
  if (options.origin !== undefined) sentHeaders.set('Origin', options.origin);

  let ws: WebSocket;
  try {
    ws = new WebSocket(parsed, subprotocols, {
      ...options.tls,
      headers: options.headers,
      origin: options.origin,
      maxPayload: settings.maxPayload,
      // The same fields as ws's own type (declared in options.ts).
      perMessageDeflate: settings.perMessageDeflate as boolean | WsDeflateOptions,
      followRedirects: false,
      ...({ closeTimeout: settings.closeTimeoutMs } as object),
    });
  } catch (e) {
    throw new InvalidArgumentError(`connectWS: ${e instanceof Error ? e.message : String(e)}`);
  }
  builder.doStart();
  return new ClientHandshake(ws, builder, settings, parsed, sentHeaders, timeout).deferred;
}

/** One connection attempt: settles its Deferred once, then hands over to a WebSocketConnection. */
class ClientHandshake<P extends WebSocketProtocol> implements WebSocketConnectionOwner {
  readonly deferred: Deferred<P>;
  readonly #ws: WebSocket;
  readonly #factory: WebSocketFactory<P>;
  readonly #settings: ConnectionSettings;
  readonly #url: URL;
  readonly #sentHeaders: Headers;
  #settled = false;
  #timer: IDelayedCall | null;
  /** The status of the server's answer, once one came. */
  #status: number | null = null;
  /** The server's 101 answer (its headers and socket), once it came. */
  #response: IncomingMessage | null = null;

  readonly #onOpen = (): void => this.#opened();
  readonly #onError = (error: Error): void => this.#failed(this.#translate(error));
  readonly #onClose = (): void =>
    this.#failed(new WebSocketHandshakeError('the connection closed during the handshake', null));
  readonly #onUpgrade = (response: IncomingMessage): void => {
    this.#status = response.statusCode ?? 101;
    this.#response = response;
  };
  readonly #onUnexpected = (_request: unknown, response: IncomingMessage): void => {
    this.#status = response.statusCode ?? null;
    this.#failed(
      new WebSocketHandshakeError(
        `the server answered ${this.#status} instead of 101 Switching Protocols`,
        this.#status,
      ),
    );
  };

  constructor(
    ws: WebSocket,
    factory: WebSocketFactory<P>,
    settings: ConnectionSettings,
    url: URL,
    sentHeaders: Headers,
    timeout: number,
  ) {
    this.#ws = ws;
    this.#factory = factory;
    this.#settings = settings;
    this.#url = url;
    this.#sentHeaders = sentHeaders;
    this.deferred = new Deferred<P>(() => this.#cancelled());
    ws.on('open', this.#onOpen);
    ws.on('error', this.#onError);
    ws.on('close', this.#onClose);
    ws.on('upgrade', this.#onUpgrade);
    ws.on('unexpected-response', this.#onUnexpected);
    this.#timer = settings.reactor.callLater(timeout, () => {
      this.#timer = null;
      this.#failed(
        new ConnectTimeoutError(`the WebSocket handshake did not finish within ${timeout} s`),
      );
    });
  }

  /** @internal The connection closed after it was open. */
  connectionClosed(_connection: WebSocketConnection): void {
    this.#factory.doStop();
  }

  #cancelled(): void {
    // The Deferred errbacks with CancelledError once this returns.
    this.#finish();
    this.#drop();
  }

  /** Destroys the attempt's socket; `ws`'s later 'error' (from the terminate) is ignored. */
  #drop(): void {
    const ws = this.#ws;
    ws.on('error', ignore);
    ws.terminate();
    this.#factory.doStop();
  }

  /** Stops listening to the attempt: its later events (after a terminate) are ignored. */
  #finish(): void {
    this.#settled = true;
    const timer = this.#timer;
    this.#timer = null;
    if (timer?.active()) timer.cancel();
    const ws = this.#ws;
    ws.removeListener('open', this.#onOpen);
    ws.removeListener('close', this.#onClose);
    ws.removeListener('upgrade', this.#onUpgrade);
    ws.removeListener('unexpected-response', this.#onUnexpected);
    ws.removeListener('error', this.#onError);
  }

  #failed(error: Error): void {
    if (this.#settled) return;
    this.#finish();
    this.#drop();
    this.deferred.errback(error);
  }

  #translate(error: Error): Error {
    if (this.#status === 101) {
      return new WebSocketHandshakeError(`invalid handshake answer: ${error.message}`, 101, {
        cause: error,
      });
    }
    const code = (error as NodeJS.ErrnoException).code;
    switch (code) {
      case 'ECONNREFUSED':
        return new ConnectionRefusedError(`Connection was refused: ${error.message}`, {
          cause: error,
        });
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return new DNSLookupError(`DNS lookup failed: ${error.message}`, { cause: error });
      case 'ECONNRESET':
        return new WebSocketHandshakeError(
          `the connection closed during the handshake: ${error.message}`,
          null,
          { cause: error },
        );
      default:
        // llhttp's codes: the connection was made, but the answer is not HTTP.
        if (typeof code === 'string' && code.startsWith('HPE_')) {
          return new WebSocketHandshakeError(
            `the server's answer is not HTTP: ${error.message}`,
            null,
            { cause: error },
          );
        }
        return new ConnectError(`WebSocket connection failed: ${error.message}`, {
          cause: error,
        });
    }
  }

  #opened(): void {
    if (this.#settled) return;
    this.#finish();
    const ws = this.#ws;
    const response = this.#response;
    const socket = (response?.socket ?? null) as Socket | null;
    const peer = socketAddress(socket, 'remote');
    const host = socketAddress(socket, 'local');
    const url = this.#url;
    const info = new WebSocketRequestInfo({
      uri: url.pathname + url.search,
      path: url.pathname,
      args: queryArgs(url.searchParams),
      headers: this.#sentHeaders,
      peer,
      host,
      secure: url.protocol === 'wss:' || url.protocol === 'https:',
      subprotocol: ws.protocol,
      responseHeaders: response === null ? null : headersOf(response),
    });
    let protocol: P | null;
    try {
      protocol = this.#factory.buildProtocol(info);
    } catch (e) {
      this.#drop();
      this.deferred.errback(e);
      return;
    }
    if (protocol === null || protocol === undefined) {
      this.#drop();
      this.deferred.errback(new ConnectError('the factory built no protocol for the connection'));
      return;
    }
    protocol.request = info;
    if (protocol.factory === undefined) {
      protocol.factory = this.#factory as unknown as WebSocketFactory;
    }
    WebSocketConnection.open(ws, protocol, {
      settings: this.#settings,
      peer,
      host,
      owner: this,
      socket,
    });
    this.deferred.callback(protocol);
  }
}

function ignore(): void {}

/** Each query name to its values, in order (as `Request.args` on the server). */
function queryArgs(params: URLSearchParams): Map<string, string[]> {
  const args = new Map<string, string[]>();
  for (const [name, value] of params) {
    const values = args.get(name);
    if (values === undefined) args.set(name, [value]);
    else values.push(value);
  }
  return args;
}

function socketAddress(socket: Socket | null, side: 'remote' | 'local'): IAddress {
  if (socket === null) return inetAddress('TCP', undefined, undefined, undefined);
  return side === 'remote'
    ? inetAddress('TCP', socket.remoteFamily, socket.remoteAddress, socket.remotePort)
    : inetAddress('TCP', socket.localFamily, socket.localAddress, socket.localPort);
}

function headersOf(response: IncomingMessage): Headers {
  const raw = response.rawHeaders;
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  try {
    return new Headers(pairs);
  } catch {
    // A value Headers refuses (control bytes): keep the rest.
    const safe = new Headers();
    for (const [name, value] of pairs) {
      try {
        safe.add(name, value);
      } catch {}
    }
    return safe;
  }
}
