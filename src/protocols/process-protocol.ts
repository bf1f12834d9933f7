/**
 * `ProcessProtocol`: the base class of child-process protocols, as Twisted's
 * `twisted.internet.protocol.ProcessProtocol`.
 *
 * @module
 */

import type { Failure } from '../reactor/failure.js';
import type { IProcessProtocol, IProcessTransport } from '../reactor/interfaces.js';

/**
 * The base class of process protocols. Override `connectionMade`,
 * `outReceived`/`errReceived` (or `childDataReceived` for other fds), the
 * `*ConnectionLost` hooks, `processExited` and `processEnded` (all no-ops
 * here).
 *
 * The reactor calls `makeConnection` once (inside `spawnProcess`), then, as
 * things happen, `childDataReceived(fd, data)` (dispatched here to
 * `outReceived` for fd 1 and `errReceived` for fd 2), `childConnectionLost(fd)`
 * once per pipe (dispatched to `inConnectionLost`/`outConnectionLost`/
 * `errConnectionLost` for fds 0/1/2) and `processExited(reason)` once; and
 * last, exactly once, `processEnded(reason)`, when the child has exited and
 * all its pipes have closed. `reason` wraps `ProcessDone` (exit code 0),
 * `ProcessTerminated` (`exitCode`/`signal`) or, when the child could not be
 * started, `ProcessSpawnError`.
 *
 * @example
 * ```ts
 * class Collect extends ProcessProtocol {
 *   readonly done = new Deferred<string>();
 *   #out: Buffer[] = [];
 *   override outReceived(data: Buffer): void { this.#out.push(data); }
 *   override processEnded(reason: Failure): void {
 *     if (reason.check(ProcessDone)) this.done.callback(Buffer.concat(this.#out).toString());
 *     else this.done.errback(reason);
 *   }
 * }
 * reactor.spawnProcess(new Collect(), 'ls', ['ls', '-la']);
 * ```
 */
export class ProcessProtocol implements IProcessProtocol {
  /** The child's transport, set by `makeConnection` before `connectionMade`. */
  transport!: IProcessTransport;

  /** `true` once `makeConnection` has run. */
  connected = false;

  /** Sets `transport` and `connected`, then calls `connectionMade()`. Called once. */
  makeConnection(transport: IProcessTransport): void {
    this.connected = true;
    this.transport = transport;
    this.connectionMade();
  }

  /** The child has been started (or its start attempted). No-op by default. */
  connectionMade(): void {}

  /**
   * The child wrote to the pipe at its fd `childFD`: calls `outReceived`
   * for 1, `errReceived` for 2, nothing for other fds.
   */
  childDataReceived(childFD: number, data: Buffer): void {
    if (childFD === 1) this.outReceived(data);
    else if (childFD === 2) this.errReceived(data);
  }

  /** Output on the child's stdout. The buffer is the protocol's to keep. No-op by default. */
  outReceived(_data: Buffer): void {}

  /** Output on the child's stderr. No-op by default. */
  errReceived(_data: Buffer): void {}

  /**
   * The pipe at the child's fd `childFD` closed: calls `inConnectionLost`,
   * `outConnectionLost` or `errConnectionLost` for 0, 1 or 2.
   */
  childConnectionLost(childFD: number): void {
    if (childFD === 0) this.inConnectionLost();
    else if (childFD === 1) this.outConnectionLost();
    else if (childFD === 2) this.errConnectionLost();
  }

  /** The child's stdin closed. No-op by default. */
  inConnectionLost(): void {}

  /** The child's stdout closed. No-op by default. */
  outConnectionLost(): void {}

  /** The child's stderr closed. No-op by default. */
  errConnectionLost(): void {}

  /** The child exited; some pipes may still be open. No-op by default. */
  processExited(_reason: Failure): void {}

  /** The child exited and all its pipes closed; the last call. No-op by default. */
  processEnded(_reason: Failure): void {}
}
