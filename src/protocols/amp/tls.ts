/**
 * `StartTLS`: switching a live AMP connection to TLS, as Twisted's
 * `amp.StartTLS`. On the wire it is an ordinary command with no arguments
 * and an empty answer; the TLS options are local arguments that never leave
 * the process.
 *
 * Asking side (TLS client):
 *
 * ```ts
 * await amp.callRemote(StartTLS, { tls: { ca: serverCert, servername: 'localhost' } });
 * ```
 *
 * The request is sent; boxes sent after it are held until the answer comes,
 * then the transport switches to TLS (client side) and the held boxes follow
 * over TLS. An error answer (e.g. `UNHANDLED`) sends them in plaintext.
 *
 * Answering side (TLS server): a responder returns the server's options;
 * once the answer is written the transport switches to TLS (server side).
 *
 * ```ts
 * amp.responder(StartTLS, () => ({ tls: { key, cert } }));
 * ```
 *
 * Unlike Twisted, there is no default responder: Twisted's makes a
 * throwaway self-signed certificate, which Node cannot do without a
 * third-party package. A peer asking for StartTLS without one gets
 * `UNHANDLED`.
 *
 * @module
 */

import { createSecureContext } from 'node:tls';
import { InvalidArgumentError } from '../../reactor/errors.js';
import type { TLSClientContextOptions } from '../../reactor/interfaces.js';
import { Argument, type ArgumentsIn, optional } from './arguments.js';
import { type AmpBox, canStartTLS, type ServerTLSOptions, TLSBox } from './box.js';
import { Command } from './command.js';
import { RemoteAmpError } from './errors.js';
import type { AMP } from './protocol.js';

/** TLS options of the asking (client) side of `StartTLS`. */
export type ClientTLSOptions = TLSClientContextOptions & { readonly handshakeTimeout?: number };

/**
 * An argument that is never sent (Twisted's `_LocalArgument`): it carries a
 * value between the caller and the command's own code, such as StartTLS's
 * TLS options. Encoding and decoding leave the box alone.
 */
export class LocalArgument<T> extends Argument<T> {
  /** @throws InvalidArgumentError always: a local argument has no wire form. */
  toBytes(_value: T): Buffer {
    throw new InvalidArgumentError('a local argument is never encoded');
  }

  /** @throws InvalidArgumentError always: a local argument has no wire form. */
  fromBytes(_data: Buffer): T {
    throw new InvalidArgumentError('a local argument is never decoded');
  }

  /** Does nothing: the value stays local. */
  override toBox(): void {}

  /** Does nothing: nothing was sent. */
  override fromBox(): void {}
}

const START_TLS_ARGUMENTS = { tls: optional(new LocalArgument<ClientTLSOptions>()) };
const START_TLS_RESPONSE = { tls: optional(new LocalArgument<ServerTLSOptions>()) };

/** StartTLS's arguments: the client's TLS options, local only. */
export type StartTLSArguments = typeof START_TLS_ARGUMENTS;
/** StartTLS's response: the server's TLS options, local only. */
export type StartTLSResponse = typeof START_TLS_RESPONSE;

/**
 * A command that switches the connection to TLS (see the module
 * documentation). `AMP.callRemote` recognises it: it fails at once with
 * `TLSNotAvailable` on a transport that cannot switch, and with
 * `OnlyOneTLS` when TLS is pending or started already.
 */
export class StartTLSCommand extends Command<StartTLSArguments, StartTLSResponse, true> {
  constructor(name = 'StartTLS') {
    super(name, { arguments: START_TLS_ARGUMENTS, response: START_TLS_RESPONSE });
  }

  /**
   * The answer: a {@link TLSBox} carrying the responder's `tls` options, so
   * that sending it starts TLS. Checked before anything is sent: a refusal
   * here is a `TLS_ERROR` answer and the connection stays as it was.
   * @throws RemoteAmpError (`TLS_ERROR`) when the transport cannot switch,
   *   TLS is already on, or the options are missing or make no context.
   */
  override makeResponse(values: ArgumentsIn<StartTLSResponse>, proto: AMP | null): AmpBox {
    if (proto === null || !canStartTLS(proto.transport)) {
      throw new RemoteAmpError('TLS_ERROR', 'TLS not available');
    }
    if (proto.tlsState !== 'none') throw new RemoteAmpError('TLS_ERROR', 'TLS already started');
    const tls = values.tls;
    if (tls === undefined || tls === null) {
      throw new RemoteAmpError('TLS_ERROR', 'the StartTLS responder gave no TLS options');
    }
    try {
      const { handshakeTimeout: _, ...context } = tls;
      createSecureContext(context);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new RemoteAmpError('TLS_ERROR', `bad TLS options: ${why}`);
    }
    return new TLSBox(tls);
  }
}

/** The `StartTLS` command, as Twisted names it. */
export const StartTLS: StartTLSCommand = new StartTLSCommand();
