/**
 * Protocols and factories: the base classes users extend, the protocol
 * library (AMP as the `amp` namespace) and the policies that wrap factories.
 *
 * @module torsion/protocols
 */

export * as amp from './amp.js';
export { AMP } from './amp.js';
export * from './basic.js';
export * from './datagram.js';
export * from './loopback.js';
export * from './policies.js';
export * from './process-protocol.js';
export * from './protocol.js';
export * from './reconnecting.js';
export * from './throttling.js';
export * from './timeout.js';
export * from './wire.js';
