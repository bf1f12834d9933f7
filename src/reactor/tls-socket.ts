/**
 * The TLS pieces shared by the stream transport (`startTLS`) and `tls.ts`
 * (`listenSSL`/`connectSSL`): the TLS error classes, how a TLS failure is
 * told apart from a plain socket error, and the two ways a connected socket
 * is turned into a `tls.TLSSocket`.
 *
 * Server-side handshakes run through a `tls.Server` that never listens:
 * sockets are handed to it with `server.emit('connection', socket)`, the
 * documented way to inject a connection. That keeps everything a TLS server
 * does (client-certificate checks, SNI, ALPN, session tickets, the
 * handshake timeout) in Node's hands, with `'secureConnection'` and
 * `'tlsClientError'` as the outcomes.
 *
 * This module imports nothing from the rest of the reactor but errors and
 * types, so `stream.ts` can use it without an import cycle.
 *
 * @module
 */

import type { Socket } from 'node:net';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import { ConnectError, ConnectionLost, InvalidArgumentError } from './errors.js';
import type { TLSClientContextOptions, TLSServerContextOptions } from './interfaces.js';

/** Default seconds a handshake may take (server accept, `startTLS`). */
export const DEFAULT_HANDSHAKE_TIMEOUT = 30;

/** The longest timer Node takes, in milliseconds (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

// ====================================================================== errors

/** The Node error code carried by `cause` (`ERR_SSL_…`, `DEPTH_ZERO_SELF_SIGNED_CERT`…), if any. */
function causeCode(cause: unknown): string | undefined {
  if (typeof cause !== 'object' || cause === null) return undefined;
  const code = (cause as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The TLS layer failed on a connection that had reached the protocol: a
 * `startTLS()` handshake that failed (certificate rejected, no common
 * protocol version or cipher, the peer hung up or sent plaintext, the
 * handshake timeout), or later a TLS alert or a corrupt record. Delivered
 * to `connectionLost`; `cause` is Node's error.
 */
export class TLSError extends ConnectionLost {
  /** Node's code for the failure (`cause.code`), e.g. `'ERR_SSL_WRONG_VERSION_NUMBER'`. */
  readonly tlsCode: string | undefined;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options, 'TORSION_ERR_TLS');
    this.tlsCode = causeCode(options?.cause);
  }
}

/**
 * A TLS handshake failed before the connection reached a protocol: the
 * `clientConnectionFailed` reason of `connectSSL` (the server's certificate
 * was not trusted or did not match the host, no common protocol, the server
 * hung up), and what `ListenSSLOptions.onHandshakeError` is told. `cause` is
 * Node's error.
 */
export class TLSHandshakeError extends ConnectError {
  /** Node's code for the failure (`cause.code`), e.g. `'DEPTH_ZERO_SELF_SIGNED_CERT'`. */
  readonly tlsCode: string | undefined;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options, 'TORSION_ERR_TLS_HANDSHAKE');
    this.tlsCode = causeCode(options?.cause);
  }
}

/**
 * TLS context options that cannot make a context (an unparsable key or
 * certificate, a key that does not match its certificate, a server side
 * without any certificate). `cause` is Node's error, when there is one.
 */
export class TLSContextError extends InvalidArgumentError {
  constructor(message: string, cause?: unknown) {
    super(message);
    if (cause !== undefined) this.cause = cause;
  }
}

/** `TLS handshake failed: <why>`, as a {@link TLSHandshakeError}. */
export function handshakeError(error: Error): TLSHandshakeError {
  return new TLSHandshakeError(`TLS handshake failed: ${error.message}`, { cause: error });
}

/**
 * Whether a socket error comes from the TLS layer (OpenSSL's errors carry a
 * `library` field; Node's own TLS errors are `ERR_SSL_*`/`ERR_TLS_*`), as
 * opposed to the TCP connection under it (`ECONNRESET`…).
 */
export function isTLSFailure(error: Error): boolean {
  if ('library' in error) return true;
  const code = causeCode(error);
  return code !== undefined && (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'));
}

// ====================================================================== options

/**
 * Checks a handshake timeout in seconds (`undefined`: the default,
 * `Infinity`: none).
 * @throws InvalidArgumentError unless a positive number.
 */
export function checkHandshakeTimeout(seconds: number | undefined): number {
  if (seconds === undefined) return DEFAULT_HANDSHAKE_TIMEOUT;
  if (typeof seconds !== 'number' || !(seconds > 0)) {
    throw new InvalidArgumentError(
      `handshakeTimeout must be a positive number of seconds: ${seconds}`,
    );
  }
  return seconds;
}

/** Whether the options give a server something to authenticate with. */
function hasServerCredentials(options: TLSServerContextOptions): boolean {
  return (
    options.cert !== undefined ||
    options.pfx !== undefined ||
    options.SNICallback !== undefined ||
    options.pskCallback !== undefined
  );
}

/**
 * A `tls.Server` that never listens and runs the handshakes of the sockets
 * handed to it with {@link handToServer}. Its handshake timeout is
 * `handshakeTimeout` seconds (`Infinity`: Node's longest timer).
 * @throws TLSContextError when the options cannot make a server context.
 */
export function createHandshakeServer(
  options: TLSServerContextOptions,
  handshakeTimeout: number,
): tls.Server {
  if (typeof options !== 'object' || options === null) {
    throw new TLSContextError('TLS server options must be an object');
  }
  if (!hasServerCredentials(options)) {
    throw new TLSContextError(
      'a TLS server needs a certificate: cert and key, pfx, SNICallback or pskCallback',
    );
  }
  const timeoutMs = Math.min(Math.ceil(handshakeTimeout * 1000), MAX_TIMER_MS);
  try {
    return tls.createServer({ ...options, handshakeTimeout: timeoutMs });
  } catch (e) {
    throw new TLSContextError(`bad TLS server options: ${(e as Error).message}`, e);
  }
}

/**
 * Builds the secure context of a TLS client once, so a bad option is
 * reported before any socket is touched.
 * @throws TLSContextError when the options cannot make a context.
 */
export function clientSecureContext(options: TLSClientContextOptions): SecureContext {
  if (typeof options !== 'object' || options === null) {
    throw new TLSContextError('TLS client options must be an object');
  }
  if (options.secureContext !== undefined) return options.secureContext;
  try {
    return tls.createSecureContext(options);
  } catch (e) {
    throw new TLSContextError(`bad TLS client options: ${(e as Error).message}`, e);
  }
}

// ====================================================================== handshakes

/**
 * Hands a connected socket to a handshake server ({@link createHandshakeServer}).
 * The outcome is the server's `'secureConnection'` (then call
 * {@link secured} on the TLS socket) or `'tlsClientError'` (then destroy it).
 */
export function handToServer(server: tls.Server, socket: Socket): void {
  // The TLS socket inherits allowHalfOpen. With it, a client that sends FIN
  // mid-handshake would leave the socket open until the handshake timeout;
  // without it, the FIN fails the handshake at once. Restored by `secured`.
  socket.allowHalfOpen = false;
  server.emit('connection', socket);
}

/** The handshake of a socket handed to a server completed: half-close works again. */
export function secured(socket: TLSSocket): void {
  socket.allowHalfOpen = true;
}

/** How a handshake begun by {@link startTLSSocket} ended: `error` is `null` on success. */
export type HandshakeDone = (error: Error | null, socket: TLSSocket | null) => void;

function ignore(): void {}

/**
 * Starts TLS over the connected socket `raw` (STARTTLS), as the server when
 * `server` is given (a {@link createHandshakeServer}), as a client with
 * `context` otherwise. Calls `done` exactly once, on a later turn: with the
 * TLS socket once the handshake (and, for a client, the server's
 * certificate check) succeeded, or with the error (the TLS socket is then
 * destroyed). From this call on, `raw` belongs to the TLS socket.
 */
export function startTLSSocket(
  raw: Socket,
  server: tls.Server | null,
  clientOptions: TLSClientContextOptions,
  context: SecureContext | null,
  done: HandshakeDone,
): void {
  if (server !== null) {
    const onSecure = (socket: TLSSocket): void => {
      server.removeListener('tlsClientError', onError);
      secured(socket);
      done(null, socket);
    };
    const onError = (error: Error, socket: TLSSocket): void => {
      server.removeListener('secureConnection', onSecure);
      socket.on('error', ignore);
      socket.destroy();
      done(error, socket);
    };
    server.once('secureConnection', onSecure);
    server.once('tlsClientError', onError);
    handToServer(server, raw);
    return;
  }
  const socket = tls.connect({
    ...clientOptions,
    secureContext: context ?? undefined,
    socket: raw,
  });
  const onSecure = (): void => {
    socket.removeListener('error', onError);
    done(null, socket);
  };
  const onError = (error: Error): void => {
    socket.removeListener('secureConnect', onSecure);
    socket.on('error', ignore);
    socket.destroy();
    done(error, socket);
  };
  socket.once('secureConnect', onSecure);
  socket.once('error', onError);
}
