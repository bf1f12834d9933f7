import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnServer } from './cli-helpers.js';

const example = fileURLToPath(new URL('../examples/echo.ts', import.meta.url));

test('examples/echo.ts echoes, and SIGINT stops the reactor cleanly', async () => {
  const server = await spawnServer(
    ['--import', 'tsx', example, '--port', '0'],
    /listening on ([\d.]+:\d+)/,
  );
  assert.equal(server.addresses[0], `127.0.0.1:${server.port}`);
  const socket = connect(server.port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write('hello, echo');
  const [echoed] = (await once(socket, 'data')) as [Buffer];
  assert.equal(echoed.toString(), 'hello, echo');
  // The server closes the connection at shutdown; the client sees the end.
  const ended = once(socket, 'close');
  assert.equal(await server.stop('SIGINT'), 0, server.stderr());
  await ended;
  assert.match(server.stdout(), /echo server stopped/);
});
