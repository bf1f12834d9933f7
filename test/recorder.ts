/**
 * A protocol that records what happens to its connection, each event
 * awaitable: shared by the stream-transport tests (TCP, UNIX, TLS).
 */

import { Protocol } from '../src/protocols/protocol.js';
import { Deferred } from '../src/reactor/deferred.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IStreamTransport, ITransport } from '../src/reactor/interfaces.js';

/** Records what happens to a connection; each event is awaitable. */
export class Recorder<T extends ITransport = IStreamTransport> extends Protocol<T> {
  readonly made = new Deferred<void>();
  readonly lost = new Deferred<void>();
  reason: Failure | null = null;
  lostCount = 0;
  received: Buffer[] = [];
  bytes = 0;
  #want = 0;
  #enough: Deferred<void> | null = null;

  override connectionMade(): void {
    this.made.callback(undefined);
  }

  override dataReceived(data: Buffer): void {
    this.received.push(data);
    this.bytes += data.length;
    this.#check();
  }

  override connectionLost(reason: Failure): void {
    this.lostCount++;
    this.reason = reason;
    if (!this.lost.called) this.lost.callback(undefined);
  }

  /** Fires once `n` bytes in all have been received. */
  waitForBytes(n: number): Deferred<void> {
    this.#want = n;
    this.#enough = new Deferred<void>();
    const d = this.#enough;
    this.#check();
    return d;
  }

  text(): string {
    return Buffer.concat(this.received).toString();
  }

  #check(): void {
    if (this.#enough !== null && this.bytes >= this.#want) {
      const d = this.#enough;
      this.#enough = null;
      d.callback(undefined);
    }
  }
}
