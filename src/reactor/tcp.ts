/**
 * TCP servers and clients: `listenTCP` and `connectTCP`, returning the
 * family-neutral {@link Port} and {@link Connector}.
 *
 * @module
 */

import net, { type NetConnectOpts, type Server, type Socket } from 'node:net';
import { IPv4Address, IPv6Address, inetAddress } from './address.js';
import { Connector, type ConnectSpec } from './connector.js';
import { InvalidArgumentError } from './errors.js';
import type {
  ConnectTCPOptions,
  IAddress,
  IClientFactory,
  IProtocolFactory,
  IReactorTime,
  ListenTCPOptions,
} from './interfaces.js';

import { checkBacklog, type ListenSpec, Port, type StreamOptions } from './port.js';

function checkPort(port: number, allowZero: boolean): void {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new InvalidArgumentError(`invalid port: ${port}`);
  }
}

function tcpPeer(socket: Socket): IAddress {
  return inetAddress('TCP', socket.remoteFamily, socket.remoteAddress, socket.remotePort);
}

function tcpUnknownHost(): undefined {
  return undefined;
}

type Listen2 = (
  address: string,
  port: number,
  addressType: number,
  backlog: number,
  fd: undefined,
  flags: number,
) => void;

/**
 * Binds `server` to `host:port`. For an IP literal this binds synchronously
 * through `Server#_listen2` (what `listen()` ends in once its DNS step, which
 * is asynchronous even for literals, is done), so the port is known when
 * `listenTCP` returns, as in Twisted. Falls back to `listen()` for host names,
 * or if a future Node drops `_listen2`.
 */
function bindTCP(server: Server, host: string, port: number, backlog: number): void {
  const family = net.isIP(host);
  const listen2 = (server as unknown as { _listen2?: Listen2 })._listen2;
  if (family !== 0 && typeof listen2 === 'function') {
    listen2.call(server, host, port, family, backlog, undefined, 0);
  } else {
    server.listen({ port, host, backlog });
  }
}

/**
 * Listens for TCP connections on `port` (0 picks a free one) of
 * `options.interface` (default `''`: all IPv4 interfaces, `0.0.0.0`; `'::'`
 * for all IPv6 and IPv4). Each connection gets `factory.buildProtocol(peer)`.
 *
 * For IP literal interfaces the socket is bound before this returns, so
 * `port.getHost()` has the real port at once; a bind failure
 * (`CannotListenError`) is reported on a later turn through
 * `port.whenListening()` (or the `'error'` event, or the log if neither is
 * used).
 * @throws InvalidArgumentError for a bad port or backlog.
 */
export function listenTCP(
  reactor: IReactorTime,
  port: number,
  factory: IProtocolFactory,
  options: ListenTCPOptions & StreamOptions = {},
): Port {
  return new Port(reactor, factory, tcpListenSpec(port, options), options);
}

/**
 * @internal The {@link ListenSpec} of a TCP port (`listenTCP`; `listenSSL`
 * adds its handshake to it).
 * @throws InvalidArgumentError for a bad port or backlog.
 */
export function tcpListenSpec(port: number, options: ListenTCPOptions): ListenSpec {
  checkPort(port, true);
  const backlog = checkBacklog(options.backlog);
  const iface = options.interface ?? '';
  const host = iface === '' ? '0.0.0.0' : iface;
  const spec: ListenSpec = {
    iface,
    port,
    bind: (server) => bindTCP(server, host, port, backlog),
    address(server) {
      const a = server?.address();
      if (a !== null && a !== undefined && typeof a === 'object') {
        return inetAddress('TCP', a.family, a.address, a.port);
      }
      return net.isIPv6(host)
        ? new IPv6Address('TCP', host, port)
        : new IPv4Address('TCP', host, port);
    },
    peerOf: tcpPeer,
    hostOf: tcpUnknownHost,
  };
  return spec;
}

/**
 * Connects to `host:port` over TCP and reports to `factory` (see
 * {@link Connector}). The attempt starts at once; it fails with
 * `ConnectTimeoutError` after `options.timeout` seconds (default 30), with
 * `ConnectionRefusedError` on `ECONNREFUSED`, `DNSLookupError` when `host`
 * does not resolve. `options.bindAddress` binds the local end first.
 * @throws InvalidArgumentError for a bad port, timeout or bind address.
 */
export function connectTCP(
  reactor: IReactorTime,
  host: string,
  port: number,
  factory: IClientFactory,
  options: ConnectTCPOptions & StreamOptions = {},
): Connector {
  const connector = new Connector(reactor, factory, tcpConnectSpec(host, port, options), options);
  connector.connect();
  return connector;
}

/**
 * @internal The {@link ConnectSpec} of a TCP connection (`connectTCP`;
 * `connectSSL` adds TLS to it).
 * @throws InvalidArgumentError for a bad port or bind address.
 */
export function tcpConnectSpec(
  host: string,
  port: number,
  options: ConnectTCPOptions,
): ConnectSpec {
  checkPort(port, false);
  const connectOptions: NetConnectOpts = { host, port };
  if (options.bindAddress !== undefined) {
    const [localAddress, localPort] = options.bindAddress;
    checkPort(localPort, true);
    connectOptions.localAddress = localAddress;
    if (localPort !== 0) connectOptions.localPort = localPort;
  }
  const destination = net.isIPv6(host)
    ? new IPv6Address('TCP', host, port)
    : new IPv4Address('TCP', host, port);
  const spec: ConnectSpec = {
    destination,
    options: connectOptions,
    peerOf: tcpPeer,
    hostOf: tcpUnknownHost,
  };
  return spec;
}

/** A TCP listening port. */
export type TCPPort = Port;
/** A TCP client connector. */
export type TCPConnector = Connector;
