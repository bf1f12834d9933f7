import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const example = fileURLToPath(new URL('../examples/echo.ts', import.meta.url));

test('examples/echo.ts echoes, and SIGINT stops the reactor cleanly', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', example, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const exited = once(child, 'exit');
  try {
    while (!/listening on/.test(stdout)) {
      await Promise.race([once(child.stdout, 'data'), exited.then(() => assert.fail(stderr))]);
    }
    const [, host, port] = /listening on ([\d.]+):(\d+)/.exec(stdout) ?? [];
    assert.equal(host, '127.0.0.1');
    const socket = connect(Number(port), host);
    await once(socket, 'connect');
    socket.write('hello, echo');
    const [echoed] = (await once(socket, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'hello, echo');
    // The server closes the connection at shutdown; the client sees the end.
    const ended = once(socket, 'close');
    child.kill('SIGINT');
    const [code, signal] = await exited;
    await ended;
    assert.equal(signal, null, `exited by signal: ${stderr}`);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /echo server stopped/);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
