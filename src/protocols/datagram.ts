/**
 * `DatagramProtocol`: the base class of UDP protocols, as Twisted's
 * `twisted.internet.protocol.DatagramProtocol`.
 *
 * @module
 */

import type {
  DatagramAddress,
  IDatagramProtocol,
  IMulticastTransport,
  IUDPTransport,
} from '../reactor/interfaces.js';

/**
 * The base class of datagram protocols: override `startProtocol`,
 * `datagramReceived`, `stopProtocol` and, for connected sockets,
 * `connectionRefused` (all no-ops here).
 *
 * One instance may serve several ports: `startProtocol()` runs when the
 * first port connects it and `stopProtocol()` when the last one stops
 * (counted in `numPorts`), as in Twisted. The reactor calls
 * `makeConnection` (→ `startProtocol`) when a port is bound, then
 * `datagramReceived` per datagram, then `doStop` (→ `stopProtocol`) once the
 * port has stopped listening.
 *
 * @typeParam T - the type `this.transport` is declared as; torsion's UDP
 * ports are {@link IMulticastTransport}s.
 *
 * @example
 * ```ts
 * class Echo extends DatagramProtocol {
 *   override datagramReceived(data: Buffer, addr: DatagramAddress): void {
 *     this.transport.write(data, addr);
 *   }
 * }
 * reactor.listenUDP(9999, new Echo(), { interface: '127.0.0.1' });
 * ```
 */
export class DatagramProtocol<T extends IUDPTransport = IMulticastTransport>
  implements IDatagramProtocol
{
  /**
   * The transport of the port most recently connected, set before
   * `startProtocol`; `undefined` until then. It stays set after
   * `stopProtocol` (writing to a stopped port throws `TransportClosedError`).
   */
  transport!: T;

  /** How many ports this protocol is connected to. */
  numPorts = 0;

  /**
   * Sets `transport` and, for the first port, calls `startProtocol()`.
   * Called by the port once it is bound.
   */
  makeConnection(transport: IMulticastTransport): void {
    this.transport = transport as unknown as T;
    this.doStart();
  }

  /** Counts a port in; on the first, calls `startProtocol()`. */
  doStart(): void {
    if (this.numPorts === 0) this.startProtocol();
    this.numPorts++;
  }

  /** Counts a port out; on the last, calls `stopProtocol()`. Extra calls are ignored. */
  doStop(): void {
    if (this.numPorts === 0) return;
    this.numPorts--;
    if (this.numPorts === 0) this.stopProtocol();
  }

  /** The first port is listening and `transport` is set. No-op by default. */
  startProtocol(): void {}

  /** The last port stopped listening. No-op by default. */
  stopProtocol(): void {}

  /**
   * One datagram arrived from `addr`; the buffer is the protocol's to keep.
   * No-op by default.
   */
  datagramReceived(_data: Buffer, _addr: DatagramAddress): void {}

  /**
   * On a connected socket, the peer refused a datagram (ICMP port
   * unreachable). No-op by default.
   */
  connectionRefused(): void {}
}
