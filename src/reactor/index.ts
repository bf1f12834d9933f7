/**
 * The reactor layer: the event loop, time, Deferreds, failures and the
 * TCP/UNIX transports. Nothing here knows about protocols beyond the
 * interfaces, nor about the web.
 *
 * @module torsion/reactor
 */

export * from './address.js';
export * from './clock.js';
export type { ConnectSpec } from './connector.js';
export { Connector, connectError } from './connector.js';
export * from './deferred.js';
export * from './deferred-list.js';
export * from './deferred-sync.js';
export * from './endpoint-strings.js';
export * from './endpoints.js';
export * from './errors.js';
export * from './failure.js';
export type * from './interfaces.js';
export * as log from './log.js';
export type { ListenSpec, PortEvents, StreamOptions } from './port.js';
export { Port } from './port.js';
export * from './process.js';
export * from './process-errors.js';
export type { ReactorEvents, RunOptions } from './reactor.js';
export { NodeReactor, reactor } from './reactor.js';
export type { StreamTransportOptions } from './stream.js';
export { DEFAULT_HIGH_WATER_MARK, StreamTransport } from './stream.js';
export * from './task.js';
export type { TCPConnector, TCPPort } from './tcp.js';
export { connectTCP, listenTCP } from './tcp.js';
export * from './threads.js';
export { DelayedCall } from './timer-queue.js';
export * from './tls.js';
export type { PhaseHook } from './triggers.js';
export { SystemEventTriggers } from './triggers.js';
export * from './udp.js';
export type { UNIXConnector, UNIXPort } from './unix.js';
export { connectUNIX, listenUNIX } from './unix.js';
