/**
 * Two protocols connected in memory: re-exported from
 * `protocols/loopback.ts`, where the implementation lives so that protocol
 * code may use it too (`protocols/` cannot import `testing/`).
 *
 * @module
 */

export * from '../protocols/loopback.js';
