/**
 * Test helpers for users' own tests: a recording transport, a recording
 * reactor with simulated time, and two protocols connected in memory.
 *
 * @module torsion/testing
 */

export { Clock } from '../reactor/clock.js';
export * from './dummy-request.js';
export * from './memory-reactor.js';
export * from './pump.js';
export * from './string-transport.js';
