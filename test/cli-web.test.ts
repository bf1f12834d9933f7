/**
 * `torsion web`: the command run as a child process (`node bin/torsion.js
 * web …` on port 0), answering real HTTP requests, and stopping with exit
 * code 0 on SIGINT/SIGTERM; its argument errors; its endpoint parser.
 */

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FormEcho, Stream } from '../examples/site.js';
import { describeAddress } from '../src/cli/web.js';
import { IPv4Address, IPv6Address, UNIXAddress } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import type { IPushProducer } from '../src/reactor/interfaces.js';
import { DummyRequest, render } from '../src/testing/dummy-request.js';
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

const hello = join(repo, 'examples/hello.ts');
const siteExample = join(repo, 'examples/site.ts');

const temp = tempModuleDir('torsion-cli-web-');

describe('torsion web: arguments', () => {
  test('--help prints the usage and exits 0; the top-level help lists web', async () => {
    const help = await torsion('web', '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: torsion web/);
    assert.match(help.stdout, /--listen ENDPOINT/);
    assert.match(help.stdout, /--access-log/);
    const top = await torsion('--help');
    assert.match(top.stdout, /web\s+serve a directory or a resource over HTTP/);
  });

  test('bad flags exit 2 with a message', async () => {
    const cases: [string[], RegExp][] = [
      [['--bogus'], /Unknown option '--bogus'/],
      [['--path'], /argument missing|--path/],
      [[], /exactly one of --path DIR or --resource MODULE/],
      [['--path', temp, '--resource', hello], /exactly one of/],
      [['--path', temp, 'extra'], /Unexpected argument|positional/i],
      [['--path', temp, '--listen', 'tcp:notaport'], /--listen: .*port must be an integer/],
      [['--path', temp, '--listen', 'tcp:70000'], /--listen: .*port must be between/],
      [['--path', temp, '--listen', 'udp:53'], /--listen: .*unknown endpoint type 'udp'/],
      [['--path', temp, '--listen', 'tcp:80:color=red'], /unknown parameter 'color'/],
      [['--path', join(temp, 'missing')], /--path: no such file or directory/],
    ];
    for (const [args, message] of cases) await assertUsageError(args, message);
  });

  test('a module without a resource, or one that fails to load, exits 1', async () => {
    const notResource = join(temp, 'not-resource.ts');
    writeFileSync(notResource, 'export default 42;\n');
    const r = await torsion('web', '--resource', notResource, '--listen', LOCAL0);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /default export is not a Resource/);
    const missing = await torsion('web', '--resource', join(temp, 'nope.ts'), '--listen', LOCAL0);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope\.ts/);
  });

  test('a port that cannot be bound exits 1', async () => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    try {
      const { port } = blocker.address() as net.AddressInfo;
      const r = await torsion('web', '--path', temp, '--listen', `tcp:${port}:interface=127.0.0.1`);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /torsion web: .*(EADDRINUSE|in use|listen)/i);
    } finally {
      blocker.close();
    }
  });
});

describe('torsion web: serving', () => {
  test('--path serves a directory; SIGINT stops it with exit code 0', async () => {
    const dir = join(temp, 'www');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'a.txt'), 'file a\n');
    writeFileSync(join(dir, 'sub', 'b.html'), '<p>b</p>\n');
    const server = await start(['--path', dir, '--listen', LOCAL0]);
    assert.equal(server.addresses.length, 1);
    assert.match(server.addresses[0]!, /^tcp:127\.0\.0\.1:\d+$/);
    const port = server.ports[0]!;
    const a = await request({ port }, 'GET', '/a.txt');
    assert.equal(a.status, 200);
    assert.equal(a.body.toString(), 'file a\n');
    assert.match(String(a.headers['content-type']), /^text\/plain/);
    const b = await request({ port }, 'GET', '/sub/b.html');
    assert.equal(b.body.toString(), '<p>b</p>\n');
    const listing = await request({ port }, 'GET', '/');
    assert.equal(listing.status, 200);
    assert.match(listing.body.toString(), /a\.txt/);
    assert.equal((await request({ port }, 'GET', '/missing')).status, 404);
    assert.equal((await request({ port }, 'GET', '/../etc/passwd')).status, 404);
    assert.equal(await server.stop('SIGINT'), 0);
  });

  test('--resource examples/hello.ts on two endpoints; SIGTERM exits 0', async () => {
    const server = await start(['--resource', hello, '--listen', LOCAL0, '--listen', LOCAL0], 2);
    assert.equal(server.ports.length, 2);
    assert.notEqual(server.ports[0], server.ports[1]);
    for (const port of server.ports) {
      const r = await request({ port }, 'GET', '/');
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'text/plain');
      assert.equal(r.body.toString(), 'Hello, world!\n');
      const echo = await request({ port }, 'POST', '/echo', 'echo me');
      assert.equal(echo.body.toString(), 'echo me');
      assert.equal((await request({ port }, 'GET', '/nope')).status, 404);
    }
    assert.equal(await server.stop('SIGTERM'), 0);
  });

  test('stops with 0 even with an idle keep-alive connection open', async () => {
    const server = await start(['--resource', hello, '--listen', LOCAL0]);
    const socket = net.connect(server.ports[0]!, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(socket, 'data');
    const closed = once(socket, 'close');
    assert.equal(await server.stop('SIGINT'), 0);
    await closed;
  });

  test('a UNIX socket endpoint', async () => {
    const path = join(temp, 'web.sock');
    const server = await start(['--resource', hello, '--listen', `unix:${path}`]);
    assert.deepEqual(server.addresses, [`unix:${path}`]);
    const r = await request({ socketPath: path }, 'GET', '/');
    assert.equal(r.body.toString(), 'Hello, world!\n');
    assert.equal(await server.stop(), 0);
  });

  test('--resource accepts a function (async too) or a Resource class', async () => {
    const data = join(repo, 'src/web/resource.ts');
    const modules: Record<string, string> = {
      'fn.ts': `import { Data } from ${JSON.stringify(data)};
export default () => Object.assign(new Data('from a function', 'text/plain'), { isLeaf: true });\n`,
      'async-fn.ts': `import { Data } from ${JSON.stringify(data)};
export default async function () { await new Promise((r) => setImmediate(r)); return Object.assign(new Data('from an async function', 'text/plain'), { isLeaf: true }); }\n`,
      'class.ts': `import { Resource } from ${JSON.stringify(data)};
export default class Root extends Resource { override isLeaf = true; render_GET() { return 'from a class'; } }\n`,
    };
    const expected: Record<string, string> = {
      'fn.ts': 'from a function',
      'async-fn.ts': 'from an async function',
      'class.ts': 'from a class',
    };
    for (const [name, source] of Object.entries(modules)) {
      const file = join(temp, name);
      writeFileSync(file, source);
      const server = await start(['--resource', file, '--listen', LOCAL0]);
      const r = await request({ port: server.ports[0]! }, 'GET', '/');
      assert.equal(r.body.toString(), expected[name], name);
      assert.equal(await server.stop(), 0);
    }
  });

  test('--access-log FILE records requests in the combined log format; - is stdout', async () => {
    const log = join(temp, 'access.log');
    const server = await start(['--resource', hello, '--listen', LOCAL0, '--access-log', log]);
    await request({ port: server.ports[0]! }, 'GET', '/nope', undefined, {
      'User-Agent': 'cli-test',
    });
    assert.equal(await server.stop(), 0);
    const line = readFileSync(log, 'utf8').trim();
    assert.match(
      line,
      /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/nope HTTP\/1\.1" 404 \d+ "-" "cli-test"$/,
    );

    const toStdout = await start(['--resource', hello, '--listen', LOCAL0, '--access-log', '-']);
    await request({ port: toStdout.ports[0]! }, 'GET', '/');
    assert.equal(await toStdout.stop(), 0);
    assert.match(toStdout.stdout(), /"GET \/ HTTP\/1\.1" 200 14 /);
  });

  test('examples/site.ts mounts: static files, the form echo, the stream', async () => {
    const server = await start(['--resource', siteExample, '--listen', LOCAL0]);
    const port = server.ports[0]!;
    const index = await request({ port }, 'GET', '/');
    assert.equal(index.status, 200);
    assert.match(index.body.toString(), /torsion web demo/);
    assert.equal((await request({ port }, 'GET', '/style.css')).status, 200);
    const form = await request({ port }, 'GET', '/form');
    assert.match(form.body.toString(), /<form method="post"/);
    const posted = await request(
      { port },
      'POST',
      '/form',
      'name=%3Cscript%3E&message=a+%26+b&topping=cheese&topping=olives',
      { 'Content-Type': 'application/x-www-form-urlencoded' },
    );
    assert.equal(posted.status, 200);
    const html = posted.body.toString();
    assert.match(html, /<th>name<\/th><td>&lt;script&gt;<\/td>/);
    assert.match(html, /<td>a &amp; b<\/td>/);
    assert.match(html, /4 fields/);
    assert.doesNotMatch(html, /<script>/);
    const wrongType = await request({ port }, 'POST', '/form', '{}', {
      'Content-Type': 'application/json',
    });
    assert.equal(wrongType.status, 415);
    const stream = await request({ port }, 'GET', '/stream');
    assert.equal(stream.status, 200);
    const lines = stream.body.toString().trim().split('\n');
    assert.equal(lines.length, 20);
    assert.match(lines[0]!, /^line 1 of 20 at /);
    assert.match(lines[19]!, /^line 20 of 20 at /);
    assert.equal(await server.stop(), 0);
  });
});

describe('examples/site.ts', () => {
  test('runs on its own: --port 0, then SIGINT exits 0', async () => {
    const server = await runExample('site.ts');
    assert.match(server.addresses[0]!, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const index = await request(server.port, 'GET', '/');
    assert.equal(index.status, 200);
    assert.match(index.body.toString(), /torsion web demo/);
    assert.equal(await server.stop('SIGINT'), 0, server.stderr());
  });

  test('/stream: one line per interval on the clock, paused with its consumer', async () => {
    const clock = new Clock();
    const stream = new Stream({ clock, interval: 0.1, lines: 3 });
    const r = new DummyRequest(['stream']);
    const rendering = render(stream, r);
    assert.equal(r.streaming, true);
    assert.equal(r.written.length, 0);
    clock.advance(0.1);
    assert.equal(r.writtenText(), 'line 1 of 3 at 0.1 s\n');
    (r.producer as IPushProducer).pauseProducing();
    assert.equal(clock.getDelayedCalls().length, 0);
    clock.advance(5);
    assert.equal(r.written.length, 1);
    (r.producer as IPushProducer).resumeProducing();
    clock.advance(0.1);
    clock.advance(0.1);
    await rendering;
    assert.equal(r.written.length, 3);
    assert.match(r.writtenText(), /line 3 of 3 at 5\.3 s\n$/);
    assert.equal(r.producer, null);
    assert.equal(r.responseHeaders.get('content-type'), 'text/plain; charset=utf-8');
  });

  test('/stream stops when the client goes away (no timer left)', async () => {
    const clock = new Clock();
    const r = new DummyRequest(['stream']);
    const rendering = render(new Stream({ clock }), r);
    clock.advance(0.1);
    r.connectionLost();
    await assert.rejects(rendering);
    assert.equal(clock.getDelayedCalls().length, 0);
    clock.advance(10);
    assert.equal(r.written.length, 1);
  });

  test('/form: GET shows the form; POST echoes escaped fields; 415 and 413', async () => {
    const form = new FormEcho();
    const get = new DummyRequest(['form']);
    await render(form, get);
    assert.match(get.writtenText(), /<form method="post"/);
    const post = new DummyRequest({
      uri: '/form',
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: 'a=%3Ci%3E&b=%22q%22',
    });
    await render(form, post);
    assert.match(post.writtenText(), /<th>a<\/th><td>&lt;i&gt;<\/td>/);
    assert.match(post.writtenText(), /<td>&quot;q&quot;<\/td>/);
    const json = new DummyRequest({
      uri: '/form',
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    await render(form, json);
    assert.equal(json.code, 415);
    const big = new DummyRequest({
      uri: '/form',
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'x='.padEnd(70_000, 'y'),
    });
    await render(form, big);
    assert.equal(big.code, 413);
  });
});

describe('describeAddress', () => {
  test('addresses print as tcp:HOST:PORT, tcp:[V6]:PORT, unix:PATH', () => {
    assert.equal(describeAddress(new IPv4Address('TCP', '127.0.0.1', 80)), 'tcp:127.0.0.1:80');
    assert.equal(describeAddress(new IPv6Address('TCP', '::1', 80)), 'tcp:[::1]:80');
    assert.equal(describeAddress(new UNIXAddress('/tmp/s')), 'unix:/tmp/s');
  });
});
