/**
 * {@link WebSocketResource}: a leaf of the resource tree that upgrades its
 * requests to WebSocket connections. The handshake is checked here, so every
 * refusal is an ordinary HTTP response through the channel (access log,
 * keep-alive); only an accepted upgrade leaves the channel: its socket and
 * the bytes read past the request head are taken with `channel.detach()` and
 * handed to `ws`'s `handleUpgrade`, which answers `101` and runs the
 * connection from then on.
 *
 * @module
 */

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import {
  type WebSocket,
  WebSocketServer,
  type PerMessageDeflateOptions as WsDeflateOptions,
} from 'ws';
import { Deferred } from '../../reactor/deferred.js';
import { ConnectionLost, InvalidArgumentError } from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import type { IAddress, IReactorCore, TriggerId } from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import { HTTPException } from '../errors.js';
import type { Request } from '../http/request.js';
import { type IRequest, NOT_DONE_YET, type RenderResult } from '../iweb.js';
import { Resource } from '../resource.js';
import { WebSocketConnection, type WebSocketConnectionOwner } from './connection.js';
import { CloseCode, checkCloseArguments } from './errors.js';
import {
  type ConnectionSettings,
  checkSubprotocols,
  isSubprotocolToken,
  resolveConnectionSettings,
  type WebSocketConnectionOptions,
} from './options.js';
import type { WebSocketFactory, WebSocketProtocol } from './protocol.js';
import { WebSocketRequestInfo } from './request-info.js';

/** Options of a {@link WebSocketResource}; times in seconds. */
export interface WebSocketResourceOptions extends WebSocketConnectionOptions {
  /**
   * The subprotocols this endpoint speaks, most preferred first. When the
   * client offers some, the first of this list that it offered is chosen
   * (`protocol.request.subprotocol`, `transport.subprotocol`); if none
   * matches, the connection opens without one (a browser then fails it).
   * Default: none.
   */
  subprotocols?: string[];
  /**
   * The pages allowed to open connections (cross-site WebSocket hijacking
   * protection): exact `Origin` values (`'https://example.com'`, compared
   * case-insensitively), or a function given the `Origin` header value. A
   * request whose `Origin` is not allowed gets 403. A request without
   * `Origin` is allowed: browsers always send one, and other clients can
   * send anything. Default: any origin.
   */
  allowedOrigins?: readonly string[] | ((origin: string) => boolean);
}

/** A base64 16-byte nonce (RFC 6455 §4.1). */
const KEY = /^[+/0-9A-Za-z]{22}==$/;

/** What `ws`'s `handleProtocols` reads: the subprotocol the resource already chose. */
const kSubprotocol: unique symbol = Symbol('torsion.websocket.subprotocol');

type UpgradeRequest = {
  method: string;
  headers: Record<string, string | string[]>;
  [kSubprotocol]: string;
};

/** Whether the comma-separated header `value` holds `token` (case-insensitive). */
function hasToken(value: string, token: string): boolean {
  for (const part of value.split(',')) {
    if (part.trim().toLowerCase() === token) return true;
  }
  return false;
}

/**
 * Answers 400 with `text` on a socket taken from its channel, then closes it
 * (as `ws` would have: the HTTP connection is gone with the detach).
 */
function refuseDetached(socket: Socket, text: string): void {
  const body = Buffer.from(text);
  socket.once('finish', socket.destroy);
  socket.end(
    Buffer.concat([
      Buffer.from(
        'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n' +
          `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n`,
        'latin1',
      ),
      body,
    ]),
  );
}

/** The request came through an `HTTPChannel` (it can leave it). */
function isChannelRequest(request: IRequest): request is Request {
  const r = request as Partial<Request>;
  return (
    typeof r.channel === 'object' &&
    r.channel !== null &&
    typeof r.channel.detach === 'function' &&
    typeof r.head === 'object'
  );
}

function answer(
  request: IRequest,
  status: number,
  text: string,
  headers?: Record<string, string>,
): string {
  request.setResponseCode(status);
  request.setHeader('Content-Type', 'text/plain; charset=utf-8');
  if (headers !== undefined)
    for (const name of Object.keys(headers)) request.setHeader(name, headers[name]!);
  return `${text}\n`;
}

/**
 * Hosts a WebSocket endpoint in the resource tree. A leaf: mount it
 * anywhere (`root.putChild('ws', new WebSocketResource(factory))`); the
 * path below it is in `protocol.request.postpath`.
 *
 * How a request is answered, in this order:
 * - no `Upgrade: websocket` (a plain GET, or another protocol asked for):
 *   **426** with `Upgrade: websocket`;
 * - not `GET`: 405 with `Allow: GET`;
 * - not an HTTP/1.1 request with `Connection: Upgrade`, a missing or
 *   malformed `Sec-WebSocket-Key`, an unsupported `Sec-WebSocket-Version`
 *   (13 and 8 are spoken; the answer lists them), or a malformed
 *   `Sec-WebSocket-Protocol`: **400**; a request with a body
 *   (`Content-Length` above 0, or chunked): **400** with
 *   `Connection: close`;
 * - an `Origin` not in `allowedOrigins`: **403**;
 * - the factory's `buildProtocol(request)` returns `null`: **403** (a throw:
 *   500, or the status of an `HTTPException`);
 * - after {@link shutdown}: 503;
 * - otherwise the connection is upgraded: `101`, then the protocol's
 *   `makeConnection` → `connectionMade`. The request is then ended with
 *   `request.upgraded(101)`: the site's access log gets it with status
 *   101 (once), and its `notifyFinish()` fires.
 *
 * Two things can still stop an upgrade after `buildProtocol`: the client
 * closed its side meanwhile (the socket is destroyed), or, with
 * `perMessageDeflate` on, `ws` refuses the client's
 * `Sec-WebSocket-Extensions` offer (malformed, or parameters it cannot
 * accept): **400** with `Connection: close`. The protocol is then dropped
 * without any callback (it was never connected).
 *
 * The factory's `doStart()` is called before its first `buildProtocol`,
 * and `doStop()` by {@link shutdown}. When the `reactor` option (default:
 * the global reactor) has system events, the first connection also adds a
 * `'before'` `'shutdown'` trigger that calls {@link shutdown} (so stopping
 * the reactor closes the connections with 1001 and waits for them);
 * `shutdown()` removes it.
 *
 * @typeParam P - the protocol type the factory builds.
 */
export class WebSocketResource<P extends WebSocketProtocol = WebSocketProtocol>
  extends Resource
  implements WebSocketConnectionOwner
{
  override isLeaf = true;

  /** Builds the protocol of each connection. */
  readonly factory: WebSocketFactory<P>;

  readonly #settings: ConnectionSettings;
  readonly #subprotocols: readonly string[];
  readonly #originAllowed: ((origin: string) => boolean) | null;
  readonly #server: WebSocketServer;
  readonly #open = new Map<WebSocketConnection, P>();
  readonly #protocols = new Set<P>();
  #started = false;
  /** The reactor's shutdown trigger, while one is registered. */
  #trigger: { reactor: IReactorCore; id: TriggerId } | null = null;
  #stopping: { waiters: Deferred<void>[] } | null = null;
  /** What `ws` refused during the current `handleUpgrade` call (its 'wsClientError'). */
  #refusal: Error | null = null;

  /**
   * @param factory - builds one protocol per accepted connection.
   * @param options - see {@link WebSocketResourceOptions}.
   * @throws InvalidArgumentError for a factory without `buildProtocol` or a bad option.
   */
  constructor(factory: WebSocketFactory<P>, options: WebSocketResourceOptions = {}) {
    super();
    if (
      typeof factory !== 'object' ||
      factory === null ||
      typeof factory.buildProtocol !== 'function'
    ) {
      throw new InvalidArgumentError('WebSocketResource: factory must be a WebSocketFactory');
    }
    this.factory = factory;
    this.#settings = resolveConnectionSettings('WebSocketResource', options);
    this.#subprotocols = checkSubprotocols('WebSocketResource', options.subprotocols);
    const allowed = options.allowedOrigins;
    if (allowed === undefined) {
      this.#originAllowed = null;
    } else if (typeof allowed === 'function') {
      this.#originAllowed = allowed;
    } else if (Array.isArray(allowed) && allowed.every((o) => typeof o === 'string')) {
      const set = new Set(allowed.map((o) => o.toLowerCase()));
      this.#originAllowed = (origin) => set.has(origin.toLowerCase());
    } else {
      throw new InvalidArgumentError(
        'WebSocketResource: allowedOrigins must be an array of strings or a function',
      );
    }
    const settings = this.#settings;
    this.#server = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: settings.maxPayload,
      // The same fields as ws's own type (declared in options.ts).
      perMessageDeflate: settings.perMessageDeflate as boolean | WsDeflateOptions,
      handleProtocols: (_offered, req) => (req as unknown as UpgradeRequest)[kSubprotocol] || false,
      // Not in @types/ws 8.18 yet: `ws`'s own timer for a closing handshake.
      ...({ closeTimeout: settings.closeTimeoutMs } as object),
    });
    // With a listener, `ws` reports a handshake it refuses instead of
    // answering it itself: the answer then goes through `#upgrade` (logged).
    this.#server.on('wsClientError', (error: Error) => {
      this.#refusal = error;
    });
  }

  /** The protocols of the open connections (until their `connectionLost` has run). */
  get connections(): ReadonlySet<P> {
    return this.#protocols;
  }

  /** Answers the handshake (see the class documentation). */
  override render(request: IRequest): RenderResult {
    const headers = request.requestHeaders;
    const upgrade = headers.get('upgrade');
    if (upgrade === null || !hasToken(upgrade, 'websocket')) {
      return answer(request, 426, 'Upgrade Required: this is a WebSocket endpoint', {
        Upgrade: 'websocket',
      });
    }
    if (request.method !== 'GET') {
      return answer(request, 405, 'Method Not Allowed: a WebSocket handshake is a GET', {
        Allow: 'GET',
      });
    }
    if (!isChannelRequest(request)) {
      throw new HTTPException(500, 'WebSocketResource needs a request from an HTTPChannel');
    }
    const head = request.head;
    if (!head.upgrade) {
      return answer(
        request,
        400,
        'Bad Request: a WebSocket handshake needs HTTP/1.1 and "Connection: Upgrade"',
      );
    }
    if (head.chunked || (head.contentLength !== null && head.contentLength > 0)) {
      // RFC 6455 §4.1: the handshake is a GET, whose body means nothing. A
      // proxy in front may have taken the body for WebSocket data: answer,
      // and do not read on from a stream we may disagree on.
      request.setHeader('Connection', 'close');
      return answer(request, 400, 'Bad Request: a WebSocket handshake has no body');
    }
    const key = headers.get('sec-websocket-key');
    if (key === null || !KEY.test(key)) {
      return answer(request, 400, 'Bad Request: missing or invalid Sec-WebSocket-Key');
    }
    const version = headers.get('sec-websocket-version')?.trim();
    if (version !== '13' && version !== '8') {
      return answer(request, 400, 'Bad Request: unsupported Sec-WebSocket-Version', {
        'Sec-WebSocket-Version': '13, 8',
      });
    }
    const origin = headers.get(version === '8' ? 'sec-websocket-origin' : 'origin');
    if (origin !== null && this.#originAllowed !== null && !this.#originAllowed(origin)) {
      return answer(request, 403, 'Forbidden: this origin may not open a WebSocket here');
    }
    const subprotocol = this.#chooseSubprotocol(headers.get('sec-websocket-protocol'));
    if (subprotocol === null) {
      return answer(request, 400, 'Bad Request: invalid Sec-WebSocket-Protocol');
    }
    if (this.#stopping !== null) {
      return answer(request, 503, 'Service Unavailable: the WebSocket endpoint is shutting down');
    }

    const channel = request.channel;
    const peer = channel.transport.getPeer();
    const host = channel.transport.getHost();
    const info = new WebSocketRequestInfo({
      uri: request.uri,
      path: request.path,
      args: request.args,
      headers,
      prepath: request.prepath.slice(),
      postpath: request.postpath.slice(),
      peer,
      host,
      secure: request.isSecure(),
      subprotocol,
    });
    if (!this.#started) {
      this.#started = true;
      this.factory.doStart();
      this.#addShutdownTrigger();
    }
    const protocol = this.factory.buildProtocol(info);
    if (protocol === null || protocol === undefined) {
      return answer(request, 403, 'Forbidden: the WebSocket connection was refused');
    }
    protocol.request = info;
    if (protocol.factory === undefined) {
      protocol.factory = this.factory as unknown as WebSocketFactory;
    }
    this.#upgrade(request, protocol, subprotocol, peer, host);
    return NOT_DONE_YET;
  }

  /**
   * Closes every open connection with `code` (default 1001, going away) and
   * `reason`, answers later upgrade requests with 503, and calls the
   * factory's `doStop()` (if it was started). The Deferred fires once every
   * connection's `connectionLost` has run (each closes within its
   * `closeTimeout`). Calling it again returns a new Deferred for the same
   * moment.
   * @throws InvalidArgumentError for a code that may not be sent or a reason over 123 bytes.
   */
  shutdown(code: number = CloseCode.GOING_AWAY, reason = ''): Deferred<void> {
    checkCloseArguments(code, reason);
    const d = new Deferred<void>();
    const trigger = this.#trigger;
    if (trigger !== null) {
      this.#trigger = null;
      trigger.reactor.removeSystemEventTrigger(trigger.id);
    }
    if (this.#stopping === null) {
      this.#stopping = { waiters: [d] };
      for (const protocol of [...this.#protocols]) protocol.transport.close(code, reason);
      if (this.#started) {
        this.#started = false;
        this.factory.doStop();
      }
    } else {
      this.#stopping.waiters.push(d);
    }
    if (this.#open.size === 0) this.#stopped();
    return d;
  }

  /** @internal A connection closed (its protocol's `connectionLost` has run). */
  connectionClosed(connection: WebSocketConnection): void {
    const protocol = this.#open.get(connection);
    if (protocol === undefined) return;
    this.#open.delete(connection);
    this.#protocols.delete(protocol);
    if (this.#stopping !== null && this.#open.size === 0) this.#stopped();
  }

  // ------------------------------------------------------------------ internals

  /**
   * The first of our subprotocols the client offered, `''` if none, or
   * `null` if the header is malformed.
   */
  #chooseSubprotocol(header: string | null): string | null {
    if (header === null) return '';
    const offered = new Set<string>();
    for (const part of header.split(',')) {
      const name = part.trim();
      if (!isSubprotocolToken(name) || offered.has(name)) return null;
      offered.add(name);
    }
    for (const name of this.#subprotocols) if (offered.has(name)) return name;
    return '';
  }

  /**
   * Leaves the HTTP channel and lets `ws` answer 101 over the socket; the
   * request is ended with `request.upgraded(101)` (or `upgraded(400)` for
   * a refusal by `ws`): one access log line, as any other request, and its
   * `notifyFinish()` fires. When no answer could go out (the client left),
   * its `notifyFinish()` fails with `ConnectionLost` instead.
   */
  #upgrade(
    request: Request,
    protocol: P,
    subprotocol: string,
    peer: IAddress,
    host: IAddress,
  ): void {
    const nodeHeaders = request.requestHeaders.toNodeHeaders();
    // Checked above to contain the token; `ws` wants exactly this value.
    nodeHeaders.upgrade = 'websocket';
    const upgradeRequest: UpgradeRequest = {
      method: 'GET',
      headers: nodeHeaders,
      [kSubprotocol]: subprotocol,
    };
    let taken: { socket: Socket; head: Buffer };
    try {
      taken = request.channel.detach();
    } catch {
      // The client went away (or the connection is closing): nothing to answer.
      return;
    }
    let upgraded = false as boolean;
    const onUpgrade = (ws: WebSocket): void => {
      upgraded = true;
      const connection = WebSocketConnection.open(ws, protocol, {
        settings: this.#settings,
        peer,
        host,
        owner: this,
        socket: taken.socket,
      });
      this.#open.set(connection, protocol);
      // Added after `open` returned: a protocol whose connectionMade closed at
      // once is still tracked until its connectionLost (from a later event).
      this.#protocols.add(protocol);
    };
    this.#refusal = null;
    try {
      // Without `verifyClient`, `handleUpgrade` is synchronous: when it
      // returns, the callback has run, or `ws` refused what we accepted (an
      // extension offer it cannot take, reported through 'wsClientError'),
      // or found the socket half-closed and destroyed it.
      this.#server.handleUpgrade(
        upgradeRequest as unknown as IncomingMessage,
        taken.socket,
        taken.head,
        onUpgrade,
      );
    } catch (e) {
      err(e, 'WebSocketResource: ws.handleUpgrade() failed');
      taken.socket.destroy();
      request.connectionLost(
        new Failure(new ConnectionLost('the upgrade failed', { cause: e })),
        false,
      );
      return;
    }
    const refusal = this.#refusal as Error | null;
    this.#refusal = null;
    if (upgraded) {
      request.upgraded(101);
    } else if (refusal !== null) {
      refuseDetached(taken.socket, `Bad Request: ${refusal.message}\n`);
      request.upgraded(400);
    } else {
      // No answer went out (the client had gone): nothing to log, and the
      // request's notifyFinish() learns it.
      request.connectionLost(
        new Failure(new ConnectionLost('the client closed the connection during the upgrade')),
        false,
      );
    }
  }

  #addShutdownTrigger(): void {
    const reactor = this.#settings.reactor as Partial<IReactorCore>;
    if (
      typeof reactor.addSystemEventTrigger !== 'function' ||
      typeof reactor.removeSystemEventTrigger !== 'function'
    ) {
      return;
    }
    const id = reactor.addSystemEventTrigger(
      'before',
      'shutdown',
      WebSocketResource.#reactorShuttingDown,
      this as WebSocketResource<WebSocketProtocol>,
    );
    this.#trigger = { reactor: reactor as IReactorCore, id };
  }

  static #reactorShuttingDown(resource: WebSocketResource<WebSocketProtocol>): Deferred<void> {
    // The trigger is spent: the reactor removes it as it fires.
    resource.#trigger = null;
    return resource.shutdown();
  }

  #stopped(): void {
    const stopping = this.#stopping;
    if (stopping === null) return;
    const waiters = stopping.waiters;
    stopping.waiters = [];
    for (const d of waiters) d.callback(undefined);
  }
}
