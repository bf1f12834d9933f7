// The torsion side of the WebSocket benchmark: a Site whose root is a
// WebSocketResource echoing every message (same type back), keep-alive off
// (the peer has none either).
//
//     node --import tsx bench/peers/ws-echo-torsion.ts [--port 0]
//
// Prints `listening on tcp:127.0.0.1:PORT` once bound.

import { parseArgs } from 'node:util';
import { reactor } from '../../src/reactor/reactor.js';
import { listenTCP } from '../../src/reactor/tcp.js';
import { Site } from '../../src/web/site.js';
import { WebSocketFactory, WebSocketProtocol, WebSocketResource } from '../../src/web/websocket.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

class Echo extends WebSocketProtocol {
  override messageReceived(data: Buffer | string, isBinary: boolean): void {
    this.transport.sendMessage(data, isBinary ? BINARY : TEXT);
  }
}
const BINARY = { binary: true };
const TEXT = { binary: false };

const resource = new WebSocketResource(WebSocketFactory.forProtocol(Echo), { pingInterval: 0 });
const port = listenTCP(reactor, Number(values.port), new Site(resource), {
  interface: '127.0.0.1',
  backlog: 4096,
});
await port.whenListening();
console.log(`listening on tcp:127.0.0.1:${(port.getHost() as unknown as { port: number }).port}`);
process.on('SIGINT', () => process.exit(0));
