/**
 * UNIX-domain stream sockets: `listenUNIX` and `connectUNIX`. They use the
 * same {@link Port}, {@link Connector} and {@link StreamTransport} as TCP;
 * only binding and addresses differ. Addresses are {@link UNIXAddress}es: the
 * socket path on the listening side, `UNIXAddress(null)` for the (unbound)
 * client end.
 *
 * @module
 */

import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { UNIXAddress } from './address.js';
import { Connector, type ConnectSpec } from './connector.js';
import { InvalidArgumentError } from './errors.js';
import type {
  IClientFactory,
  IProtocolFactory,
  IReactorTime,
  ListenUNIXOptions,
} from './interfaces.js';
import { checkBacklog, type ListenSpec, Port, type StreamOptions } from './port.js';

const UNBOUND = new UNIXAddress(null);

function checkPath(path: string): void {
  if (typeof path !== 'string' || path.length === 0) {
    throw new InvalidArgumentError(`invalid UNIX socket path: ${String(path)}`);
  }
}

/**
 * Whether `path` is a socket file nobody listens on (a connect is refused).
 * Only socket files qualify: anything else at `path` is never removed.
 */
function isStaleSocket(path: string): Promise<boolean> {
  try {
    if (!lstatSync(path).isSocket()) return Promise.resolve(false);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code === 'ECONNREFUSED');
    });
  });
}

/**
 * Listens for UNIX-domain stream connections on `path`.
 *
 * The socket file is bound before this returns. If `path` already exists and
 * is a socket file no process listens on, it is removed and the bind retried
 * (unless `wantPID` is `false`); the port then becomes listening on a later
 * turn (see `whenListening()`). `mode` (e.g. `0o660`) is applied with
 * `chmod` once bound; failing that fails the bind. The file is removed when
 * the port stops listening. Bind failures are `CannotListenError`, reported
 * as for `listenTCP`.
 * @throws InvalidArgumentError for an empty path or a bad backlog or mode.
 */
export function listenUNIX(
  reactor: IReactorTime,
  path: string,
  factory: IProtocolFactory,
  options: ListenUNIXOptions & StreamOptions = {},
): Port {
  checkPath(path);
  const backlog = checkBacklog(options.backlog);
  const mode = options.mode;
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)) {
    throw new InvalidArgumentError(`invalid mode: ${mode}`);
  }
  const host = new UNIXAddress(path);
  const spec: ListenSpec = {
    iface: 'unix',
    port: path,
    bind: (server) => server.listen({ path, backlog }),
    address: () => host,
    peerOf: () => UNBOUND,
    hostOf: () => host,
    bound:
      mode === undefined
        ? undefined
        : () => {
            chmodSync(path, mode);
          },
    recover:
      options.wantPID === false
        ? undefined
        : async (error) => {
            if (error.code !== 'EADDRINUSE' || !(await isStaleSocket(path))) return false;
            try {
              unlinkSync(path);
            } catch {
              return false;
            }
            return true;
          },
  };
  return new Port(reactor, factory, spec, options);
}

/**
 * Connects to the UNIX-domain socket at `path` and reports to `factory`, as
 * `connectTCP` does. A missing or unlistened socket file fails with
 * `ConnectionRefusedError` (`ECONNREFUSED`) or `ConnectError` (`ENOENT`,
 * the system error as `cause`); `options.timeout` is in seconds (default 30).
 * @throws InvalidArgumentError for an empty path or a bad timeout.
 */
export function connectUNIX(
  reactor: IReactorTime,
  path: string,
  factory: IClientFactory,
  options: { timeout?: number } & StreamOptions = {},
): Connector {
  checkPath(path);
  const destination = new UNIXAddress(path);
  const spec: ConnectSpec = {
    destination,
    options: { path },
    peerOf: () => destination,
    hostOf: () => UNBOUND,
  };
  const connector = new Connector(reactor, factory, spec, options);
  connector.connect();
  return connector;
}

/** A UNIX-domain listening port. */
export type UNIXPort = Port;
/** A UNIX-domain client connector. */
export type UNIXConnector = Connector;
