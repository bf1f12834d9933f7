/**
 * The STARTTLS pieces of a {@link StreamTransport} (whose `startTLS()`
 * drives them): the options turned into a context before the connection is
 * touched ({@link prepareStartTLS}: a bad option leaves the connection as it
 * was), the state of a handshake in progress ({@link TLSSwitch}: the writes
 * made meanwhile, a FIN asked for, the timeout), and the peer certificate
 * of a TLS socket as the transport reports it.
 *
 * @module
 */

import type { PeerCertificate, SecureContext, Server, TLSSocket } from 'node:tls';
import type {
  IDelayedCall,
  StartTLSOptions,
  TLSClientContextOptions,
  TLSServerContextOptions,
} from './interfaces.js';
import { checkHandshakeTimeout, clientSecureContext, createHandshakeServer } from './tls-socket.js';

/** A `startTLS()` whose options have made a context, ready to run. */
export interface PreparedTLS {
  /** The handshake server (the server side), else `null`. */
  readonly server: Server | null;
  /** The client's secure context (the client side), else `null`. */
  readonly context: SecureContext | null;
  /** The context options (what is left of the `startTLS` options). */
  readonly contextOptions: TLSClientContextOptions;
  /** Seconds the handshake may take (`Infinity`: no limit). */
  readonly timeout: number;
  /** Bytes received before the switch, to feed to TLS first. */
  readonly head: Uint8Array | undefined;
}

/**
 * Checks `startTLS()` options and makes the context they describe: a
 * handshake server for `isServer: true` (the transport's own timer times
 * its handshake), a client context otherwise.
 * @throws InvalidArgumentError for a bad `handshakeTimeout`, or
 *   (`TLSContextError`) for options that make no context.
 */
export function prepareStartTLS(options: StartTLSOptions): PreparedTLS {
  const { isServer, head, handshakeTimeout, ...contextOptions } = options;
  const timeout = checkHandshakeTimeout(handshakeTimeout);
  let server: Server | null = null;
  let context: SecureContext | null = null;
  if (isServer === true) {
    server = createHandshakeServer(
      contextOptions as TLSServerContextOptions,
      Number.POSITIVE_INFINITY, // the transport's own timer applies
    );
  } else {
    context = clientSecureContext(contextOptions as TLSClientContextOptions);
  }
  return {
    server,
    context,
    contextOptions: contextOptions as TLSClientContextOptions,
    timeout,
    head,
  };
}

/** A `startTLS()` handshake in progress: what the transport holds back until it completes. */
export class TLSSwitch {
  /** The writes made since the switch, in order, sent once TLS is up. */
  readonly queue: (Uint8Array | string)[] = [];
  /** Bytes in {@link queue} (strings counted as UTF-8). */
  queued = 0;
  /** Our FIN was asked for and waits for the handshake. */
  endPending = false;
  #timer: IDelayedCall | null = null;

  /** Holds `data` back (it counts in the transport's `bufferedAmount`). */
  hold(data: Uint8Array | string): void {
    this.queue.push(data);
    this.queued += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  }

  /** The handshake's timeout (cancelled by {@link cancelTimer}). */
  set timer(call: IDelayedCall) {
    this.#timer = call;
  }

  /** Cancels the timeout, if it is still pending. */
  cancelTimer(): void {
    const timer = this.#timer;
    if (timer !== null) {
      this.#timer = null;
      if (timer.active()) timer.cancel();
    }
  }
}

/** The peer certificate of a TLS socket (`detailed`: with its chain), or `null` when it sent none. */
export function peerCertificateOf(socket: TLSSocket, detailed: boolean): PeerCertificate | null {
  const cert = socket.getPeerCertificate(detailed);
  return cert === null || cert === undefined || Object.keys(cert).length === 0 ? null : cert;
}
