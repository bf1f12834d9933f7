/**
 * AMP, the Asynchronous Messaging Protocol, wire-compatible with Twisted's
 * `twisted.protocols.amp`: typed commands over a stream, with requests and
 * answers in key/value boxes.
 *
 * - {@link command} / {@link Command}: a command's name, typed arguments and
 *   response, declared errors; used by both sides.
 * - Argument types: `Integer`, `BigInteger`, `String` (bytes, also `Bytes`),
 *   `Unicode`, `Boolean` (also `Bool`), `Float`, `Decimal`, `DateTime`,
 *   `Path`, `ListOf(T)`, `AmpList({…})`, and `optional(T)`.
 * - {@link AMP}: the protocol (`callRemote`, `responder`, a class-level
 *   {@link ResponderTable}), built as Twisted's layers:
 *   {@link BinaryBoxProtocol} (framing) → {@link BoxDispatcher}
 *   (requests/answers) → responder lookup.
 * - {@link StartTLS}: switching a live connection to TLS.
 *
 * @module
 */

export * from './amp/arguments.js';
export * from './amp/box.js';
export * from './amp/command.js';
export * from './amp/dispatcher.js';
export * from './amp/errors.js';
export * from './amp/protocol.js';
export * from './amp/tls.js';
export * from './amp/values.js';
