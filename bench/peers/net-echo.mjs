// The peer of the echo benchmark: a plain node:net echo server, the way one
// writes it without torsion (`socket.pipe(socket)`: backpressure included).
//
//     node bench/peers/net-echo.mjs [--port 0] [--interface 127.0.0.1]
//
// Prints `echo server listening on HOST:PORT` once bound, as examples/echo.ts.

import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', short: 'p', default: '8000' },
    interface: { type: 'string', short: 'i', default: '127.0.0.1' },
  },
});

const server = net.createServer((socket) => {
  socket.on('error', () => {});
  socket.pipe(socket);
});
server.listen(Number(values.port), values.interface, () => {
  const { address, port } = server.address();
  console.log(`echo server listening on ${address}:${port}`);
});
const stop = () => {
  server.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
