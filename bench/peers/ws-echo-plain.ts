// The peer of the WebSocket benchmark: a plain `ws` WebSocketServer on
// node:http, echoing every message (same type back), written the way one
// does without torsion.
//
//     node --import tsx bench/peers/ws-echo-plain.ts [--port 0]
//
// Prints `listening on tcp:127.0.0.1:PORT` once bound.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

const server = http.createServer((_req, res) => {
  res.writeHead(426, { Upgrade: 'websocket' });
  res.end();
});
const wss = new WebSocketServer({ server, clientTracking: false });
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen({ port: Number(values.port), host: '127.0.0.1', backlog: 4096 }, () => {
  console.log(`listening on tcp:127.0.0.1:${(server.address() as AddressInfo).port}`);
});
process.on('SIGINT', () => process.exit(0));
