/**
 * Protocols and factories: the base classes users extend.
 *
 * @module torsion/protocols
 */

export * from './protocol.js';
