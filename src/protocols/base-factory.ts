/**
 * {@link BaseFactory}: what every torsion factory shares with Twisted's
 * `Factory`, whatever kind of protocol it builds: the protocol class and
 * its constructor arguments, and the `doStart`/`doStop` count of the
 * factory's users. `Factory` (in protocol.ts) builds stream protocols on
 * it; the web layer's `WebSocketFactory` builds WebSocket protocols.
 *
 * @module
 */

import { InvalidArgumentError } from '../reactor/errors.js';
import { msg } from '../reactor/log.js';

/**
 * The common base of factories: holds {@link BaseFactory.protocol} and
 * {@link BaseFactory.protocolArgs} for the subclass's `buildProtocol`, and
 * counts its users in `numPorts`: `doStart()` on the first one calls
 * `startFactory()`, `doStop()` on the last one calls `stopFactory()`, as
 * Twisted's `Factory`. Who the users are, and what `buildProtocol` takes,
 * is the subclass's to say.
 *
 * @typeParam P - the protocol type the factory builds.
 */
export abstract class BaseFactory<P extends object> {
  /** The protocol class `buildProtocol` instantiates; `null` until set. */
  protocol: (new (...args: never[]) => P) | null = null;

  /** Arguments given to the protocol's constructor. */
  protocolArgs: readonly unknown[] = [];

  /**
   * How many users (for a `Factory`: ports and connectors) currently use
   * this factory (see `doStart`).
   */
  numPorts = 0;

  /** Log `Starting factory` / `Stopping factory` messages (default `false`). */
  noisy = false;

  /**
   * A user (for a `Factory`: a port or connector) starts using this
   * factory: on the first one, `startFactory()`. Called by the user (the
   * reactor, for ports and connectors), not by application code.
   */
  doStart(): void {
    if (this.numPorts === 0) {
      if (this.noisy) msg(`Starting factory ${String(this)}`);
      this.startFactory();
    }
    this.numPorts++;
  }

  /**
   * A user stops using this factory: on the last one, `stopFactory()`.
   * Extra calls (count already 0) are ignored.
   */
  doStop(): void {
    if (this.numPorts === 0) return;
    this.numPorts--;
    if (this.numPorts === 0) {
      if (this.noisy) msg(`Stopping factory ${String(this)}`);
      this.stopFactory();
    }
  }

  /**
   * Called once before the first user (for a `Factory`: port or connector)
   * uses the factory. No-op by default.
   */
  startFactory(): void {}

  /** Called once after the last user stopped using it. No-op by default. */
  stopFactory(): void {}

  /** `<ClassName>`, for logs. */
  toString(): string {
    return `<${this.constructor.name}>`;
  }

  /**
   * `new protocol(...protocolArgs)`, for the subclass's `buildProtocol` (which
   * sets the instance's `factory`).
   * @throws InvalidArgumentError if {@link BaseFactory.protocol} is not set.
   */
  protected instantiateProtocol(): P {
    const ProtocolCtor = this.protocol as (new (...args: readonly unknown[]) => P) | null;
    if (ProtocolCtor === null) {
      throw new InvalidArgumentError(`${this.constructor.name}.protocol is not set`);
    }
    return new ProtocolCtor(...this.protocolArgs);
  }
}

/**
 * Sets `factory`'s protocol class and constructor arguments; returns the
 * factory. The body of the factories' static `forProtocol`.
 */
export function withProtocol<F extends BaseFactory<P>, P extends object, A extends unknown[]>(
  factory: F,
  protocol: new (...args: A) => P,
  args: A,
): F {
  factory.protocol = protocol as unknown as new (...args: never[]) => P;
  factory.protocolArgs = args;
  return factory;
}
