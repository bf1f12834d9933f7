// The load generator of the WebSocket benchmark (run in its own process):
// opens `--connections` `ws` clients to ws://127.0.0.1:PORT/, then each keeps
// `--window` messages of `--size` bytes in flight (sent, not yet echoed)
// until `--messages` in all have come back. Prints one JSON line:
// `{"messages": N, "seconds": S}` (the time from all open to all echoed).
//
//     node --import tsx bench/peers/ws-client.ts --port P [--connections 50]
//       [--window 32] [--messages 200000] [--size 64] [--text]

import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    connections: { type: 'string', default: '50' },
    window: { type: 'string', default: '32' },
    messages: { type: 'string', default: '200000' },
    size: { type: 'string', default: '64' },
    text: { type: 'boolean', default: false },
  },
});

const port = Number(values.port);
const connections = Number(values.connections);
const window = Number(values.window);
const perConnection = Math.ceil(Number(values.messages) / connections);
const size = Number(values.size);
const payload: Buffer | string = values.text ? 'x'.repeat(size) : Buffer.alloc(size, 0x61);

function open(): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function drive(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let received = 0;
    ws.on('error', reject);
    ws.on('message', () => {
      received++;
      if (received === perConnection) {
        resolve();
        return;
      }
      if (sent < perConnection) {
        sent++;
        ws.send(payload);
      }
    });
    while (sent < window && sent < perConnection) {
      sent++;
      ws.send(payload);
    }
  });
}

const sockets: WebSocket[] = [];
for (let i = 0; i < connections; i += 50) {
  sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, connections - i) }, open))));
}
const start = process.hrtime.bigint();
await Promise.all(sockets.map(drive));
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
await Promise.all(
  sockets.map(
    (ws) =>
      new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close();
      }),
  ),
);
console.log(JSON.stringify({ messages: perConnection * connections, seconds }));
