/**
 * TLS servers and clients: `listenSSL` and `connectSSL`, over `node:tls`,
 * returning the same {@link Port} and {@link Connector} as TCP and
 * connecting protocols over the same {@link StreamTransport} (a
 * `tls.TLSSocket` is a `net.Socket` of plaintext). STARTTLS on a live TCP
 * connection is `transport.startTLS()` (in `stream.ts`).
 *
 * A connection reaches the factory once its handshake has completed:
 *
 * - Server: each accepted socket is handed to a `tls.Server` that never
 *   listens (one per port); `buildProtocol` is called on
 *   `'secureConnection'`. A client that fails the handshake (plaintext, no
 *   common protocol, a rejected certificate, a hang-up, the handshake
 *   timeout) is destroyed and reported to `onHandshakeError` only: it costs
 *   the server nothing else.
 * - Client: the attempt completes on `'secureConnect'` (the server's
 *   certificate verified); a handshake failure is `clientConnectionFailed`
 *   with a {@link TLSHandshakeError} (a `ConnectError`), a TCP failure the
 *   same error as `connectTCP`'s. The timeout covers both.
 *
 * This differs from Twisted, whose TLS wraps the protocol after the TCP
 * connect (so a failed handshake is a `connectionLost`): here
 * `getPeerCertificate()` already answers in `connectionMade`.
 *
 * @module
 */

import type { NetConnectOpts, Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { Connector, type ConnectSpec, connectError } from './connector.js';
import { type ConnectError, InvalidArgumentError } from './errors.js';
import type {
  ConnectTCPOptions,
  IClientFactory,
  IProtocolFactory,
  IReactorTime,
  ListenSSLOptions,
  TLSClientContextOptions,
  TLSServerContextOptions,
} from './interfaces.js';
import { err } from './log.js';
import { type ListenSpec, Port, type StreamOptions } from './port.js';
import { tcpConnectSpec, tcpListenSpec } from './tcp.js';
import {
  checkHandshakeTimeout,
  clientSecureContext,
  createHandshakeServer,
  handshakeError,
  handToServer,
  secured,
} from './tls-socket.js';

export {
  DEFAULT_HANDSHAKE_TIMEOUT,
  isTLSFailure,
  TLSContextError,
  TLSError,
  TLSHandshakeError,
} from './tls-socket.js';

// ====================================================================== server

const kAcceptor = Symbol('torsion.tlsAcceptor');
type AcceptorServer = tls.Server & { [kAcceptor]: TLSAcceptor };

let acceptorOnSecure: (this: AcceptorServer, socket: TLSSocket) => void;
let acceptorOnError: (this: AcceptorServer, error: Error, socket: TLSSocket) => void;

/** Runs the handshakes of one port's accepted sockets. */
class TLSAcceptor {
  readonly #server: AcceptorServer;
  readonly #onHandshakeError: ((error: Error) => void) | undefined;
  /** The port's callback for prepared sockets (the same function for every socket). */
  #ready: ((socket: Socket) => void) | null = null;

  constructor(
    contextOptions: TLSServerContextOptions,
    handshakeTimeout: number,
    onHandshakeError: ((error: Error) => void) | undefined,
  ) {
    const server = createHandshakeServer(contextOptions, handshakeTimeout) as AcceptorServer;
    server[kAcceptor] = this;
    server.on('secureConnection', acceptorOnSecure);
    server.on('tlsClientError', acceptorOnError);
    this.#server = server;
    this.#onHandshakeError = onHandshakeError;
  }

  accept(socket: Socket, ready: (socket: Socket) => void): void {
    this.#ready = ready;
    handToServer(this.#server, socket);
  }

  // Listeners are plain functions (`this` is the tls.Server), assigned here
  // because they use private fields; one function object serves all ports.
  static {
    acceptorOnSecure = function acceptorOnSecure(this: AcceptorServer, socket: TLSSocket): void {
      secured(socket);
      this[kAcceptor].#ready?.(socket);
    };

    acceptorOnError = function acceptorOnError(
      this: AcceptorServer,
      error: Error,
      socket: TLSSocket,
    ): void {
      // Node does not destroy the socket on every handshake failure (not on
      // its own timeout): this is the one place that does.
      socket.destroy();
      const report = this[kAcceptor].#onHandshakeError;
      if (report === undefined) return;
      try {
        report(handshakeError(error));
      } catch (e) {
        err(e, 'Unhandled error in onHandshakeError()');
      }
    };
  }
}

/**
 * Listens for TLS connections on TCP `port` of `options.interface`, as
 * {@link listenTCP} does (same binding rules: for IP literals the port is
 * bound, and `getHost()` has the real port, before this returns; bind
 * failures are `CannotListenError` through `whenListening()`), with a TLS
 * handshake between the accept and `factory.buildProtocol(peer)`.
 *
 * `contextOptions` are `tls.createServer` options and must carry a
 * certificate (`key`+`cert`, `pfx`, `SNICallback` or `pskCallback`). Each
 * client has `options.handshakeTimeout` seconds (default 30) to complete the
 * handshake. Clients that fail it never reach the factory (see
 * `options.onHandshakeError`). A handshake still running when the port
 * stops listening completes and is connected, as an accepted connection
 * outlives its port.
 * @throws InvalidArgumentError for a bad port, backlog, timeout or
 *   `onHandshakeError`; `TLSContextError` (an InvalidArgumentError) when the
 *   context options make no server context.
 */
export function listenSSL(
  reactor: IReactorTime,
  port: number,
  factory: IProtocolFactory,
  contextOptions: TLSServerContextOptions,
  options: ListenSSLOptions & StreamOptions = {},
): Port {
  const base = tcpListenSpec(port, options);
  const timeout = checkHandshakeTimeout(options.handshakeTimeout);
  const onHandshakeError = options.onHandshakeError;
  if (onHandshakeError !== undefined && typeof onHandshakeError !== 'function') {
    throw new InvalidArgumentError('onHandshakeError must be a function');
  }
  const acceptor = new TLSAcceptor(contextOptions, timeout, onHandshakeError);
  const spec: ListenSpec = {
    ...base,
    accept: (socket, ready) => acceptor.accept(socket, ready),
  };
  return new Port(reactor, factory, spec, options);
}

// ====================================================================== client

const kTCPConnected = Symbol('torsion.tcpConnected');
type ClientSocket = Socket & { [kTCPConnected]?: true };

function markTCPConnected(this: ClientSocket): void {
  this[kTCPConnected] = true;
}

/**
 * Before the TCP connection: the same errors as `connectTCP`
 * (`ConnectionRefusedError`, `DNSLookupError`…). After it, before the
 * handshake completed: a {@link TLSHandshakeError}.
 */
function tlsConnectError(error: NodeJS.ErrnoException, socket: Socket): ConnectError {
  return (socket as ClientSocket)[kTCPConnected] === true
    ? handshakeError(error)
    : connectError(error);
}

/**
 * Connects to `host:port` over TLS and reports to `factory` as
 * {@link connectTCP} does, the attempt completing once the handshake has
 * completed and the server's certificate has been verified (against
 * `contextOptions.ca`, or Node's root store; for `servername`, or `host`),
 * unless `contextOptions.rejectUnauthorized` is `false`.
 *
 * Failures go to `clientConnectionFailed`: the TCP ones as for
 * `connectTCP`, the handshake ones (untrusted or mismatched certificate, no
 * common protocol, the server hung up) as a {@link TLSHandshakeError} whose
 * `cause` is Node's error (`cause.code`: `'DEPTH_ZERO_SELF_SIGNED_CERT'`,
 * `'ERR_TLS_CERT_ALTNAME_INVALID'`, `'ERR_SSL_…'`…), and
 * `ConnectTimeoutError` when TCP connect plus handshake take longer than
 * `options.timeout` seconds (default 30). With TLS 1.3 a server verifies a
 * client certificate after the client's handshake is done: its refusal
 * arrives as `connectionLost` with a `TLSError`.
 * @throws InvalidArgumentError for a bad port, timeout or bind address;
 *   `TLSContextError` when the context options make no context.
 */
export function connectSSL(
  reactor: IReactorTime,
  host: string,
  port: number,
  factory: IClientFactory,
  contextOptions: TLSClientContextOptions,
  options: ConnectTCPOptions & StreamOptions = {},
): Connector {
  const base = tcpConnectSpec(host, port, options);
  const secureContext = clientSecureContext(contextOptions);
  const tlsOptions: tls.ConnectionOptions = { ...contextOptions, secureContext };
  const spec: ConnectSpec = {
    ...base,
    createSocket(netOptions: NetConnectOpts): Socket {
      const socket = tls.connect({ ...(netOptions as tls.ConnectionOptions), ...tlsOptions });
      socket.once('connect', markTCPConnected);
      return socket;
    },
    connectedEvent: 'secureConnect',
    connectError: tlsConnectError,
  };
  const connector = new Connector(reactor, factory, spec, options);
  connector.connect();
  return connector;
}

/** A TLS listening port. */
export type SSLPort = Port;
/** A TLS client connector. */
export type SSLConnector = Connector;
