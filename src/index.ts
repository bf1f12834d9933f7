/**
 * torsion: an event-loop reactor runtime for TypeScript on Node.js, in the
 * style of Twisted. This entry re-exports the reactor, protocol and testing
 * layers; each is also importable on its own (`torsion/reactor`,
 * `torsion/protocols`, `torsion/testing`, `torsion/web`).
 *
 * @module torsion
 */

export * from './protocols/index.js';
export * from './reactor/index.js';
export {
  type ConnectedPair,
  connectedServerAndClient,
  FakeTransport,
  IOPump,
  MemoryReactor,
  MemoryReactorClock,
  StringTransport,
  StringTransportWithDisconnection,
} from './testing/index.js';
export * from './web/index.js';
