/**
 * UDP: `listenUDP` and {@link UDPPort}, a bound datagram socket over
 * `node:dgram` that is both the listening port and its protocol's transport
 * (Twisted's `udp.Port` and `udp.MulticastPort` in one).
 *
 * Binding is synchronous: the socket gets a `lookup` that answers IP literals
 * at once (and only IP literals are accepted, as in Twisted), so dgram's
 * `bind()` binds before it returns; `getHost()` has the real port as soon as
 * `listenUDP` returns, and the protocol is connected by then. A bind failure
 * is reported on a later turn (`whenListening()`, the `'error'` event, or
 * the log), as for TCP ports.
 *
 * @module
 */

import dgram, { type RemoteInfo, type Socket } from 'node:dgram';
import net from 'node:net';
import { EventEmitter } from 'eventemitter3';
import { IPv4Address, IPv6Address, inetAddress } from './address.js';
import { Deferred, fail, succeed } from './deferred.js';
import {
  CannotListenError,
  InvalidArgumentError,
  TorsionError,
  TransportClosedError,
} from './errors.js';
import { Failure } from './failure.js';
import type {
  DatagramAddress,
  IDatagramProtocol,
  IListeningPort,
  IMulticastTransport,
  IReactorTime,
  ListenUDPOptions,
} from './interfaces.js';
import { err } from './log.js';

// ====================================================================== errors

/** A datagram too long for UDP (Twisted's `MessageLengthError`; the kernel's `EMSGSIZE`). */
export class MessageLengthError extends TorsionError {
  /** The datagram's length in bytes. */
  readonly length: number;
  /** The longest datagram the socket's family allows. */
  readonly maxLength: number;

  constructor(length: number, maxLength: number) {
    super(
      `message too long: ${length} bytes (at most ${maxLength} fit in a UDP datagram)`,
      'TORSION_ERR_MESSAGE_LENGTH',
    );
    this.length = length;
    this.maxLength = maxLength;
  }
}

/** `write` without an address on a UDP socket that is not connected. */
export class DestinationRequiredError extends TorsionError {
  constructor(
    message = 'write() needs an address: this UDP socket is not connected (call connect(host, port) first)',
  ) {
    super(message, 'TORSION_ERR_DESTINATION_REQUIRED');
  }
}

/** `connect` on a UDP socket that is already connected (reconnecting is not supported). */
export class AlreadyConnectedError extends TorsionError {
  constructor(message = 'already connected; reconnecting is not supported') {
    super(message, 'TORSION_ERR_ALREADY_CONNECTED');
  }
}

/** Joining or leaving a multicast group, or choosing the outgoing interface, failed. */
export class MulticastJoinError extends TorsionError {
  /** The group (or, for `setOutgoingInterface`, the interface) asked for. */
  readonly group: string;
  /** The interface asked for (`''`: the kernel's choice). */
  readonly iface: string;

  constructor(what: string, group: string, iface: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      `${what} ${group}${iface ? ` on ${iface}` : ''} failed: ${why}`,
      'TORSION_ERR_MULTICAST',
      {
        cause,
      },
    );
    this.group = group;
    this.iface = iface;
  }
}

/**
 * A datagram could not be sent, reported after `write` returned (the
 * kernel answered asynchronously). `cause` is Node's error, whose `code` is
 * the system's (`ENETUNREACH`, `EACCES` for broadcast without
 * `setBroadcastAllowed(true)`…).
 */
export class DatagramSendError extends TorsionError {
  /** The destination host, when known. */
  readonly host: string | undefined;
  /** The destination port, when known. */
  readonly port: number | undefined;
  /** The system error code (`'ENETUNREACH'`…), when known. */
  readonly errorCode: string | undefined;

  constructor(cause: NodeJS.ErrnoException & { address?: string; port?: number }) {
    const to = cause.address === undefined ? '' : ` to ${cause.address}:${cause.port}`;
    super(`UDP send${to} failed: ${cause.message}`, 'TORSION_ERR_DATAGRAM_SEND', { cause });
    this.host = cause.address;
    this.port = cause.port;
    this.errorCode = cause.code;
  }
}

// ====================================================================== the port

/** Largest UDP payload over IPv4: 65535 − 20 (IP header) − 8 (UDP header). */
const MAX_IPV4_DATAGRAM = 65507;
/** Largest UDP payload over IPv6 without jumbograms: 65535 − 8 (UDP header). */
const MAX_IPV6_DATAGRAM = 65527;
/** Default `maxPacketSize`: no datagram is truncated. */
const DEFAULT_MAX_PACKET_SIZE = 65535;

/** Events of a {@link UDPPort}, for observers. */
export interface UDPPortEvents {
  /** Binding failed (emitted on a later turn than `listenUDP`'s return). */
  error: [error: CannotListenError];
  /**
   * A datagram could not be sent (reported after `write` returned). Without a
   * listener for this event, the error is logged.
   */
  sendError: [error: DatagramSendError];
  /** The port stopped listening (when `stopListening()`'s Deferred fires). */
  close: [];
}

const BINDING = 0;
const BOUND = 1;
const FAILED = 2;
const CLOSED = 3;

const kPort = Symbol('torsion.udpPort');
type PortSocket = Socket & { [kPort]: UDPPort };

/**
 * dgram resolves every address through this, synchronously for IP literals,
 * so `bind`, `connect` and `send` complete before they return. Callers only
 * ever pass literals; anything else is a bug upstream and fails as a lookup.
 */
function literalLookup(
  address: string,
  _family: unknown,
  callback: (error: Error | null, address: string, family: number) => void,
): void {
  const family = net.isIP(address);
  if (family === 0) {
    callback(new InvalidArgumentError(`not an IP literal: ${address}`), address, 0);
  } else {
    callback(null, address, family);
  }
}

function noop(): void {}

let socketOnMessage: (this: PortSocket, data: Buffer, rinfo: RemoteInfo) => void;
let socketOnError: (this: PortSocket, error: NodeJS.ErrnoException) => void;

/**
 * A bound UDP socket: the listening port `listenUDP` returns and the
 * transport its {@link IDatagramProtocol} writes through.
 *
 * Lifecycle: bound and connected to the protocol (`makeConnection`) inside
 * `listenUDP` → `stopListening()` closes the socket at once (no datagram is
 * delivered after it), then on the next reactor turn the protocol's
 * `doStop()` runs, `'close'` is emitted and the Deferreds fire. A port whose
 * bind failed never connects its protocol.
 *
 * Send failures the kernel reports asynchronously never throw: on a
 * connected socket `ECONNREFUSED` calls the protocol's `connectionRefused()`;
 * anything else is emitted as `'sendError'` ({@link DatagramSendError}) or,
 * with no listener, logged.
 */
export class UDPPort
  extends EventEmitter<UDPPortEvents>
  implements IListeningPort, IMulticastTransport
{
  readonly #reactor: IReactorTime;
  readonly #protocol: IDatagramProtocol;
  readonly #socket: PortSocket;
  readonly #iface: string;
  readonly #port: number;
  readonly #ipv6: boolean;
  readonly #maxPacketSize: number;
  readonly #maxDatagram: number;
  #state = BINDING;
  #host: IPv4Address | IPv6Address;
  #failure: Failure | null = null;
  /** The bind failure has been reported: later `whenListening()` calls fail at once. */
  #failureReported = false;
  #listenWaiters: Deferred<this>[] = [];
  #closeWaiters: Deferred<void>[] = [];
  #protocolConnected = false;

  /** The connected peer as the kernel reports it (canonical form), or `null`. */
  #peerHost: string | null = null;
  #peerPort = 0;
  /** The peer's host as given to `connect()`, also accepted by `write`. */
  #peerGivenHost = '';
  /** The last destination host that passed validation: skips `net.isIP` for repeats. */
  #checkedHost = '';

  #broadcast = false;
  #loopback = true;
  #ttl = 1;
  #outgoing = '';

  /** Passed to every `send`, so errors reach us; one function per port. */
  readonly #onSent: (error: Error | null) => void;

  /**
   * Creates the socket and binds it (`listenUDP` is the usual way). Argument
   * errors throw; bind errors are reported through `whenListening()`.
   * @throws InvalidArgumentError for a bad port, interface or option.
   */
  constructor(
    reactor: IReactorTime,
    port: number,
    protocol: IDatagramProtocol,
    options: ListenUDPOptions = {},
  ) {
    super();
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new InvalidArgumentError(`invalid port: ${port}`);
    }
    const iface = options.interface ?? '';
    if (iface !== '' && net.isIP(iface) === 0) {
      throw new InvalidArgumentError(`interface must be an IP literal (or ''): ${iface}`);
    }
    const maxPacketSize = options.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE;
    if (!Number.isInteger(maxPacketSize) || maxPacketSize < 1) {
      throw new InvalidArgumentError(`maxPacketSize must be a positive integer: ${maxPacketSize}`);
    }
    this.#reactor = reactor;
    this.#protocol = protocol;
    this.#iface = iface;
    this.#port = port;
    this.#ipv6 = net.isIPv6(iface);
    this.#maxPacketSize = maxPacketSize;
    this.#maxDatagram = this.#ipv6 ? MAX_IPV6_DATAGRAM : MAX_IPV4_DATAGRAM;
    const host = iface === '' ? '0.0.0.0' : iface;
    this.#host = this.#ipv6
      ? new IPv6Address('UDP', host, port)
      : new IPv4Address('UDP', host, port);
    this.#onSent = (error) => {
      if (error) this.#sendFailed(error);
    };

    const socket = dgram.createSocket({
      type: this.#ipv6 ? 'udp6' : 'udp4',
      reuseAddr: options.listenMultiple === true,
      lookup: literalLookup,
    }) as PortSocket;
    socket[kPort] = this;
    socket.on('error', socketOnError);
    socket.on('message', socketOnMessage);
    this.#socket = socket;
    // With literalLookup, bind() binds (or emits 'error') before returning.
    socket.bind(port, host);
    if (this.#state === BINDING) this.#bound();
  }

  // ------------------------------------------------------------------ socket listeners

  static {
    socketOnMessage = function socketOnMessage(
      this: PortSocket,
      data: Buffer,
      rinfo: RemoteInfo,
    ): void {
      const port = this[kPort];
      if (port.#state !== BOUND) return;
      // The kernel filters a connected socket's input, but datagrams queued
      // before connect() could still arrive from others.
      if (
        port.#peerHost !== null &&
        (rinfo.port !== port.#peerPort || rinfo.address !== port.#peerHost)
      ) {
        return;
      }
      if (data.length > port.#maxPacketSize) data = data.subarray(0, port.#maxPacketSize);
      try {
        port.#protocol.datagramReceived(data, [rinfo.address, rinfo.port]);
      } catch (e) {
        err(e, 'Unhandled error in protocol.datagramReceived()');
      }
    };

    socketOnError = function socketOnError(this: PortSocket, error: NodeJS.ErrnoException): void {
      const port = this[kPort];
      if (port.#state === BINDING) {
        port.#bindFailed(error);
      } else if (port.#state === BOUND) {
        // A receive error (a connected socket's ICMP refusal surfaces here too).
        port.#sendFailed(error);
      }
    };
  }

  // ------------------------------------------------------------------ IListeningPort

  /**
   * The bound address, with the real port when 0 was asked; the requested
   * address if binding failed.
   */
  getHost(): IPv4Address | IPv6Address {
    return this.#host;
  }

  /**
   * Fires with the port (already fired when bound, which is before
   * `listenUDP` returns), or fails with `CannotListenError` once the bind
   * failure has been reported (on the turn after `listenUDP`).
   */
  whenListening(): Deferred<this> {
    if (this.#failure === null) return succeed(this);
    if (this.#failureReported) return fail(this.#failure);
    const d = new Deferred<this>();
    this.#listenWaiters.push(d);
    return d;
  }

  /**
   * Closes the socket at once (no more datagrams are delivered, writes
   * throw), then, on the next reactor turn, calls the protocol's `doStop()`,
   * emits `'close'` and fires the Deferreds. Each call returns a Deferred
   * firing at that moment (at once when already stopped, or never bound).
   */
  stopListening(): Deferred<void> {
    if (this.#state === FAILED || (this.#state === CLOSED && this.#closeWaiters.length === 0)) {
      return succeed(undefined);
    }
    const d = new Deferred<void>();
    this.#closeWaiters.push(d);
    if (this.#state === BOUND) {
      this.#state = CLOSED;
      this.#socket.close();
      this.#reactor.callLater(0, UDPPort.#closed, this);
    }
    return d;
  }

  // ------------------------------------------------------------------ IUDPTransport

  /**
   * Sends `data` as one datagram to `addr` (or to the connected peer). Empty
   * data sends an empty datagram. Completes without blocking; failures the
   * kernel reports later go to `connectionRefused()` (connected socket,
   * `ECONNREFUSED`) or `'sendError'`/the log.
   * @throws DestinationRequiredError without `addr` on an unconnected socket.
   * @throws InvalidArgumentError for a host that is not an IP literal of this
   *   socket's family, a port outside 1–65535, or an `addr` that is not the
   *   peer of a connected socket.
   * @throws MessageLengthError above 65507 bytes (IPv4) or 65527 (IPv6).
   * @throws TransportClosedError after `stopListening()` (or a failed bind).
   */
  write(data: Uint8Array | string, addr?: DatagramAddress): void {
    if (this.#state !== BOUND) throw new TransportClosedError();
    const length = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    if (length > this.#maxDatagram) throw new MessageLengthError(length, this.#maxDatagram);
    const socket = this.#socket;
    if (this.#peerHost !== null) {
      if (
        addr !== undefined &&
        ((addr[0] !== this.#peerHost && addr[0] !== this.#peerGivenHost) ||
          addr[1] !== this.#peerPort)
      ) {
        throw new InvalidArgumentError(
          `this UDP socket is connected to ${this.#peerHost}:${this.#peerPort}: cannot write to ${addr[0]}:${addr[1]}`,
        );
      }
      socket.send(data, this.#onSent);
      return;
    }
    if (addr === undefined) throw new DestinationRequiredError();
    const [host, port] = addr;
    if (host !== this.#checkedHost) {
      this.#checkHost(host);
      this.#checkedHost = host;
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new InvalidArgumentError(`invalid port: ${port}`);
    }
    socket.send(data, port, host, this.#onSent);
  }

  /**
   * Connects the socket to `host:port` before returning: from then on only
   * that peer's datagrams are delivered and `write` takes no address.
   * @throws AlreadyConnectedError if already connected.
   * @throws InvalidArgumentError for a host that is not an IP literal of this
   *   socket's family, or a port outside 1–65535.
   * @throws TransportClosedError after `stopListening()` (or a failed bind).
   */
  connect(host: string, port: number): void {
    if (this.#state !== BOUND) throw new TransportClosedError();
    if (this.#peerHost !== null) throw new AlreadyConnectedError();
    this.#checkHost(host);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new InvalidArgumentError(`invalid port: ${port}`);
    }
    const socket = this.#socket;
    // With literalLookup the connect happens inside this call; a failure is
    // also reported to the callback on the next tick, which we then ignore.
    socket.connect(port, host, noop);
    let remote: { address: string; port: number };
    try {
      remote = socket.remoteAddress();
    } catch (e) {
      throw new InvalidArgumentError(
        `cannot connect to ${host}:${port}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    // Datagrams report their source in the kernel's form: filter on that.
    this.#peerHost = remote.address;
    this.#peerPort = remote.port;
    this.#peerGivenHost = host;
  }

  /** Allows or forbids sending to broadcast addresses (`SO_BROADCAST`). */
  setBroadcastAllowed(enabled: boolean): void {
    this.#open().setBroadcast(enabled);
    this.#broadcast = enabled;
  }

  /** What `setBroadcastAllowed` set last (default `false`). */
  getBroadcastAllowed(): boolean {
    return this.#broadcast;
  }

  // ------------------------------------------------------------------ IMulticastTransport

  /** The interface set with `setOutgoingInterface` (default `''`: the kernel's choice). */
  getOutgoingInterface(): string {
    return this.#outgoing;
  }

  /**
   * Sends multicast from the interface with address `addr` (for IPv6, a
   * scope such as `'::%eth0'`). Returns an already-fired Deferred: failed with
   * {@link MulticastJoinError} if the kernel refused.
   * @throws TransportClosedError after `stopListening()`.
   */
  setOutgoingInterface(addr: string): Deferred<void> {
    const socket = this.#open();
    try {
      socket.setMulticastInterface(addr);
    } catch (e) {
      return fail(new MulticastJoinError('setting the outgoing interface to', addr, '', e));
    }
    this.#outgoing = addr;
    return succeed(undefined);
  }

  /** What `setLoopbackMode` set last (default `true`, the kernel's default). */
  getLoopbackMode(): boolean {
    return this.#loopback;
  }

  /**
   * Whether our own multicast datagrams are delivered back to this host.
   * @throws TransportClosedError after `stopListening()`.
   */
  setLoopbackMode(mode: boolean): void {
    this.#open().setMulticastLoopback(mode);
    this.#loopback = mode;
  }

  /** What `setTTL` set last (default 1, the kernel's default). */
  getTTL(): number {
    return this.#ttl;
  }

  /**
   * Sets the multicast time-to-live (0 keeps datagrams on this host).
   * @throws InvalidArgumentError outside 0–255.
   * @throws TransportClosedError after `stopListening()`.
   */
  setTTL(ttl: number): void {
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 255) {
      throw new InvalidArgumentError(`multicast TTL must be an integer in 0–255: ${ttl}`);
    }
    this.#open().setMulticastTTL(ttl);
    this.#ttl = ttl;
  }

  /**
   * Joins the multicast group `addr` on the interface with address `iface`
   * (default `''`: the kernel's choice). Returns an already-fired Deferred,
   * failed with {@link MulticastJoinError} if the kernel refused (`addr` not
   * a multicast address, already joined, no such interface…).
   * @throws TransportClosedError after `stopListening()`.
   */
  joinGroup(addr: string, iface = ''): Deferred<void> {
    const socket = this.#open();
    try {
      if (iface === '') socket.addMembership(addr);
      else socket.addMembership(addr, iface);
    } catch (e) {
      return fail(new MulticastJoinError('joining', addr, iface, e));
    }
    return succeed(undefined);
  }

  /**
   * Leaves a group joined with `joinGroup`. Returns an already-fired
   * Deferred, failed with {@link MulticastJoinError} if the kernel refused
   * (not a member…).
   * @throws TransportClosedError after `stopListening()`.
   */
  leaveGroup(addr: string, iface = ''): Deferred<void> {
    const socket = this.#open();
    try {
      if (iface === '') socket.dropMembership(addr);
      else socket.dropMembership(addr, iface);
    } catch (e) {
      return fail(new MulticastJoinError('leaving', addr, iface, e));
    }
    return succeed(undefined);
  }

  /** `<UDPPort ADDRESS>`, for logs. */
  override toString(): string {
    return `<UDPPort ${String(this.#host)}>`;
  }

  // ------------------------------------------------------------------ internals

  #open(): Socket {
    if (this.#state !== BOUND) throw new TransportClosedError();
    return this.#socket;
  }

  #checkHost(host: string): void {
    const ok = this.#ipv6 ? net.isIPv6(host) : net.isIPv4(host);
    if (!ok) {
      throw new InvalidArgumentError(
        `${this.#ipv6 ? 'IPv6' : 'IPv4'} UDP sockets take ${this.#ipv6 ? 'IPv6' : 'IPv4'} literals, not host names or other families: ${host}`,
      );
    }
  }

  #bound(): void {
    this.#state = BOUND;
    const a = this.#socket.address();
    this.#host = inetAddress('UDP', a.family, a.address, a.port);
    this.#protocolConnected = true;
    try {
      this.#protocol.makeConnection(this);
    } catch (e) {
      err(e, 'Unhandled error in protocol.makeConnection()');
    }
  }

  #bindFailed(cause: unknown): void {
    this.#state = FAILED;
    this.#failure = new Failure(new CannotListenError(this.#iface, this.#port, cause));
    this.#socket.close();
    // bind() emitted the error inside the constructor: report it once the
    // caller had a chance to call whenListening() or add an 'error' listener.
    queueMicrotask(() => this.#reportBindFailure());
  }

  #reportBindFailure(): void {
    const failure = this.#failure!;
    this.#failureReported = true;
    let reported = false;
    if (this.listenerCount('error') > 0) {
      this.emit('error', failure.value as CannotListenError);
      reported = true;
    }
    const waiters = this.#listenWaiters;
    this.#listenWaiters = [];
    for (const d of waiters) {
      d.errback(failure);
      reported = true;
    }
    if (!reported) err(failure, 'UDP port could not listen');
  }

  static #closed(port: UDPPort): void {
    if (port.#protocolConnected) {
      port.#protocolConnected = false;
      try {
        port.#protocol.doStop();
      } catch (e) {
        err(e, 'Unhandled error in protocol.doStop()');
      }
    }
    port.emit('close');
    const closers = port.#closeWaiters;
    port.#closeWaiters = [];
    for (const d of closers) d.callback(undefined);
  }

  #sendFailed(error: Error): void {
    if (this.#state !== BOUND) return;
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ECONNREFUSED' && this.#peerHost !== null) {
      try {
        this.#protocol.connectionRefused();
      } catch (thrown) {
        err(thrown, 'Unhandled error in protocol.connectionRefused()');
      }
      return;
    }
    const sendError = new DatagramSendError(e);
    if (this.listenerCount('sendError') > 0) this.emit('sendError', sendError);
    else err(sendError, `Datagram send failed on ${String(this)}`);
  }
}

/**
 * Binds a UDP socket to `port` (0 picks a free one) on `options.interface`
 * (default `''`: all IPv4 interfaces; an IPv6 literal makes an IPv6 socket)
 * and connects `protocol` to it, all before returning: `getHost()` has the
 * real port and `protocol.makeConnection` has run. A bind failure
 * (`CannotListenError`) is reported on the next turn through
 * `whenListening()`, the `'error'` event, or the log if neither is used; the
 * protocol is then never connected.
 * @throws InvalidArgumentError for a bad port, a host-name interface or a bad
 *   `maxPacketSize`.
 */
export function listenUDP(
  reactor: IReactorTime,
  port: number,
  protocol: IDatagramProtocol,
  options?: ListenUDPOptions,
): UDPPort {
  return new UDPPort(reactor, port, protocol, options);
}
