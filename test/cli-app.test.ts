/**
 * `torsion web --fetch MODULE` and `--app MODULE`: the command run as a
 * child process on port 0, answering real HTTP requests (the Hono example,
 * a plain fetch handler, the app fixture), stopping with exit code 0 on
 * SIGINT/SIGTERM; their argument and module errors; and examples/hono.ts
 * run on its own.
 */

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  assertUsageError,
  LOCAL0,
  repo,
  request,
  runExample,
  startWeb as start,
  tempModuleDir,
  torsion,
} from './cli-helpers.js';

const honoExample = join(repo, 'examples/hono.ts');
const appFixture = join(repo, 'test/fixtures/cli-app.ts');

const temp = tempModuleDir('torsion-cli-app-');

describe('torsion web --fetch / --app: arguments', () => {
  test('--help documents --app and --fetch; the top-level help mentions them', async () => {
    const help = await torsion('web', '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--app MODULE/);
    assert.match(help.stdout, /--fetch MODULE/);
    assert.match(help.stdout, /Hono/);
    const top = await torsion('--help');
    assert.match(
      top.stdout,
      /web\s+serve a directory or a resource over HTTP \(or an app, a fetch handler\)/,
    );
  });

  test('exactly one source: two of them, or --fetch without a module, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['--fetch', honoExample, '--app', appFixture],
        /exactly one of .*--app MODULE or --fetch MODULE/,
      ],
      [['--fetch', honoExample, '--path', temp], /exactly one of/],
      [['--resource', honoExample, '--app', appFixture], /exactly one of/],
      [['--fetch'], /argument missing|--fetch/],
    ];
    for (const [args, message] of cases)
      await assertUsageError([...args, '--listen', LOCAL0], message);
  });

  test('a module whose default export does not fit exits 1 with a message', async () => {
    const number = join(temp, 'number.ts');
    writeFileSync(number, 'export default 42;\n');
    const noFetch = join(temp, 'no-fetch.ts');
    writeFileSync(noFetch, 'export default { fetch: "not a function" };\n');
    const fetchNumber = await torsion('web', '--fetch', number, '--listen', LOCAL0);
    assert.equal(fetchNumber.code, 1);
    assert.match(fetchNumber.stderr, /default export is not a fetch handler/);
    const fetchObject = await torsion('web', '--fetch', noFetch, '--listen', LOCAL0);
    assert.equal(fetchObject.code, 1);
    assert.match(fetchObject.stderr, /default export is not a fetch handler/);
    const appNumber = await torsion('web', '--app', number, '--listen', LOCAL0);
    assert.equal(appNumber.code, 1);
    assert.match(appNumber.stderr, /default export is not an app/);
    const missing = await torsion('web', '--fetch', join(temp, 'nope.ts'), '--listen', LOCAL0);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope\.ts/);
  });
});

describe('torsion web --fetch / --app: serving', () => {
  test('--fetch examples/hono.ts: routes, params, JSON, streaming, 404, 500; SIGINT exits 0', async () => {
    const server = await start(['--fetch', honoExample, '--listen', LOCAL0]);
    const port = server.port;
    const root = await request(port, 'GET', '/');
    assert.equal(root.status, 200);
    assert.equal(root.body.toString(), 'Hello from Hono on torsion!');
    const user = await request(port, 'GET', '/users/5?tag=x');
    assert.deepEqual(JSON.parse(user.body.toString()), { id: '5', tags: ['x'] });
    const echo = await request(port, 'POST', '/echo', '{"a":[1,2]}', {
      'Content-Type': 'application/json',
    });
    assert.equal(echo.status, 201);
    assert.deepEqual(JSON.parse(echo.body.toString()), { received: { a: [1, 2] } });
    const streamed = await request(port, 'GET', '/stream');
    assert.equal(streamed.headers['transfer-encoding'], 'chunked');
    assert.equal(streamed.body.toString(), 'line 1\nline 2\nline 3\nline 4\nline 5\n');
    const sse = await request(port, 'GET', '/sse?count=2');
    assert.equal(sse.headers['content-type'], 'text/event-stream');
    assert.match(sse.body.toString(), /data: \{"n":2\}\nid: 2\n\n$/);
    assert.equal((await request(port, 'GET', '/missing')).status, 404);
    const error = await request(port, 'GET', '/error');
    assert.equal(error.status, 500);
    assert.equal((await request(port, 'GET', '/')).status, 200);
    assert.equal(await server.stop('SIGINT'), 0);
    assert.match(server.stderr(), /this route throws/, "Hono's error handler printed the error");
  });

  test('--fetch with a plain handler function (async), and with an object with fetch; SIGTERM exits 0', async () => {
    const fn = join(temp, 'handler.ts');
    writeFileSync(
      fn,
      `export default async function (request: Request): Promise<Response> {
  const body = request.body === null ? '' : await request.text();
  return new Response(\`\${request.method} \${new URL(request.url).pathname} [\${body}]\`, {
    headers: { 'X-Handler': 'function' },
  });
}
`,
    );
    const obj = join(temp, 'object.ts');
    writeFileSync(
      obj,
      `export default {
  greeting: 'hello from an object',
  fetch(request: Request): Response {
    return new Response(\`\${this.greeting} at \${new URL(request.url).pathname}\`);
  },
};
`,
    );
    const a = await start(['--fetch', fn, '--listen', LOCAL0]);
    const posted = await request(a.port, 'POST', '/x/y', 'payload');
    assert.equal(posted.body.toString(), 'POST /x/y [payload]');
    assert.equal(posted.headers['x-handler'], 'function');
    assert.equal(await a.stop('SIGTERM'), 0);
    const b = await start(['--fetch', obj, '--listen', LOCAL0]);
    assert.equal(
      (await request(b.port, 'GET', '/z')).body.toString(),
      'hello from an object at /z',
    );
    assert.equal(await b.stop('SIGTERM'), 0);
  });

  test('--app test/fixtures/cli-app.ts: the app answers, reads its input; SIGINT exits 0', async () => {
    const server = await start(['--app', appFixture, '--listen', LOCAL0]);
    const get = await request(server.port, 'GET', '/some/where?q=1');
    assert.equal(get.status, 200);
    assert.equal(get.headers['x-served-by'], 'cli-app fixture');
    assert.equal(get.body.toString(), 'GET /some/where ?q=1\nbody 0 bytes\n');
    const upload = Buffer.alloc(300_000, 0x41);
    const post = await request(server.port, 'POST', '/up', upload);
    assert.equal(post.body.toString(), 'POST /up ?\nbody 300000 bytes\n');
    assert.equal(await server.stop('SIGINT'), 0);
  });
});

describe('examples/hono.ts on its own', () => {
  test('runs with --port 0, serves the app, and exits 0 on SIGINT', async () => {
    const server = await runExample('hono.ts');
    const r = await request(server.port, 'GET', '/posts/1/comments/2');
    assert.deepEqual(JSON.parse(r.body.toString()), { post: '1', comment: '2' });
    assert.equal(await server.stop('SIGINT'), 0);
  });
});
