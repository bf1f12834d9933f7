/**
 * Request (IRequest) through a channel in memory: request-side accessors
 * (args, path forms, headers, cookies, addresses, host name), response
 * building (codes, headers and their checks, cookies, redirect, framing and
 * its limits), the write/finish rules, producers, notifyFinish, body(),
 * sessions.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AlreadyCalledError,
  ConnectionLost,
  InvalidArgumentError,
  ProducerAlreadyRegistered,
  TorsionError,
  TransportClosedError,
} from '../src/reactor/errors.js';
import type { IPushProducer } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { InvalidHeaderError } from '../src/web/http/errors.js';
import {
  ContentLengthMismatch,
  formatCookie,
  parseQuery,
  pathSegments,
  type Request,
} from '../src/web/http/request.js';
import type { IRequest, RenderResult } from '../src/web/iweb.js';
import { NOT_DONE_YET, Resource } from '../src/web/resource.js';
import { header, type MemoryConnection, memoryConnection, parseResponses } from './http-wire.js';

/** Keeps each request pending for the test to answer. */
class Pending extends Resource {
  override isLeaf = true;
  readonly requests: Request[] = [];
  override render(request: IRequest): RenderResult {
    this.requests.push(request as Request);
    return NOT_DONE_YET;
  }
}

function open(
  wire: string,
  options: Parameters<typeof memoryConnection>[1] = {},
): {
  c: MemoryConnection;
  request: Request;
  root: Pending;
} {
  const root = new Pending();
  const c = memoryConnection(root, options);
  c.feed(wire);
  const request = root.requests[0]!;
  assert.ok(request !== undefined, 'dispatched');
  return { c, request, root };
}

const get = (target: string, extra = ''): string =>
  `GET ${target} HTTP/1.1\r\nHost: h\r\n${extra}\r\n`;

describe('Request: the request side', () => {
  test('method, uri, path, clientproto, args (lazy, +, escapes, repeats, blanks)', () => {
    const { request } = open(get('/a/b%20c?x=1&y=a+b&x=%C3%A9&flag&empty=&&bad=%zz'));
    assert.equal(request.method, 'GET');
    assert.equal(request.uri, '/a/b%20c?x=1&y=a+b&x=%C3%A9&flag&empty=&&bad=%zz');
    assert.equal(request.path, '/a/b%20c');
    assert.equal(request.clientproto, 'HTTP/1.1');
    assert.deepEqual(
      [...request.args],
      [
        ['x', ['1', 'é']],
        ['y', ['a b']],
        ['flag', ['']],
        ['empty', ['']],
        ['bad', ['%zz']],
      ],
    );
    assert.equal(request.args, request.args, 'parsed once');
    assert.deepEqual(request.postpath, ['a', 'b c']);
    assert.deepEqual(request.prepath, []);
  });

  test('absolute-form and asterisk-form targets', () => {
    const a = open(get('http://example.com:8080/p/q?z=1'));
    assert.equal(a.request.path, '/p/q');
    assert.deepEqual(a.request.postpath, ['p', 'q']);
    assert.deepEqual([...a.request.args], [['z', ['1']]]);
    const b = open(get('http://example.com'));
    assert.equal(b.request.path, '/');
    const c = open('OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n');
    assert.equal(c.request.path, '*');
    assert.deepEqual(c.request.postpath, []);
  });

  test('pathSegments and parseQuery on their own', () => {
    assert.deepEqual(pathSegments('/'), ['']);
    assert.deepEqual(pathSegments('/a//b/'), ['a', '', 'b', '']);
    assert.deepEqual(pathSegments('/%2F%2e%2e'), ['/..']);
    assert.equal(pathSegments('/%E0%A4%A'), null);
    assert.deepEqual([...parseQuery('')], []);
    assert.deepEqual([...parseQuery('a=%ZZ%41')], [['a', ['%ZZA']]]);
  });

  test('headers, cookies (several Cookie fields, quoted values), host name', () => {
    const { request } = open(
      get('/', 'Cookie: a=1; b="two"\r\nCookie: a=ignored; c=3\r\nX-Multi: x\r\nX-Multi: y\r\n'),
    );
    assert.equal(request.getHeader('x-multi'), 'x, y');
    assert.equal(request.getHeader('absent'), null);
    assert.equal(request.getCookie('a'), '1');
    assert.equal(request.getCookie('b'), 'two');
    assert.equal(request.getCookie('c'), '3');
    assert.equal(request.getCookie('d'), null);
    assert.equal(request.getRequestHostname(), 'h');
    assert.equal(
      open('GET / HTTP/1.1\r\nHost: example.com:81\r\n\r\n').request.getRequestHostname(),
      'example.com',
    );
    assert.equal(
      open('GET / HTTP/1.1\r\nHost: [::1]:81\r\n\r\n').request.getRequestHostname(),
      '::1',
    );
    assert.equal(open('GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n').request.getRequestHostname(), '::1');
    assert.equal(open('GET / HTTP/1.0\r\n\r\n').request.getRequestHostname(), '127.0.0.1');
  });

  test('host name: the authority of an absolute-form target wins over Host (RFC 9112 §3.2.2)', () => {
    const hostname = (wire: string): string => open(wire).request.getRequestHostname();
    assert.equal(
      hostname('GET http://example.com:81/x HTTP/1.1\r\nHost: test\r\n\r\n'),
      'example.com',
    );
    assert.equal(hostname('GET http://example.com HTTP/1.1\r\nHost: test\r\n\r\n'), 'example.com');
    assert.equal(
      hostname('GET https://example.com?q=1 HTTP/1.1\r\nHost: test\r\n\r\n'),
      'example.com',
    );
    assert.equal(hostname('GET http://[::1]:8080/x HTTP/1.1\r\nHost: test\r\n\r\n'), '::1');
    assert.equal(
      hostname('GET http://user@example.org/x HTTP/1.1\r\nHost: test\r\n\r\n'),
      'example.org',
    );
    assert.equal(hostname('GET http://example.com/x HTTP/1.0\r\n\r\n'), 'example.com');
    // An empty authority names nothing: Host is used.
    assert.equal(hostname('GET http:///x HTTP/1.1\r\nHost: test:80\r\n\r\n'), 'test');
    // Origin-form: Host, whatever the path looks like.
    assert.equal(hostname('GET /http://evil/ HTTP/1.1\r\nHost: test\r\n\r\n'), 'test');
  });

  test('addresses and isSecure', () => {
    const { request } = open(get('/'));
    assert.equal(String(request.getClientAddress()), String(request.channel.transport.getPeer()));
    assert.equal((request.getHost() as { port?: number }).port, 8080);
    assert.equal(request.isSecure(), false);
    assert.equal(open(get('/'), { secure: true }).request.isSecure(), true);
  });
});

describe('Request: building the response', () => {
  test('status code and reason, headers; invalid ones throw typed errors', () => {
    const { c, request } = open(get('/'));
    request.setResponseCode(201, 'Made It');
    request.setHeader('X-One', 'a');
    request.responseHeaders.add('X-Two', 'b');
    assert.throws(() => request.setHeader('X-Bad', 'a\r\nInjected: yes'), InvalidHeaderError);
    assert.throws(() => request.setHeader('X-Bad', 'a\nb'), TorsionError);
    assert.throws(() => request.setHeader('X-Bad', 'a\0b'), InvalidHeaderError);
    assert.throws(() => request.setHeader('Bad Name', 'v'), InvalidHeaderError);
    assert.throws(() => request.setResponseCode(99), InvalidArgumentError);
    assert.throws(() => request.setResponseCode(200, 'bad\r\nreason'), InvalidHeaderError);
    request.respond('ok');
    const [r] = parseResponses(c.written(), ['GET'], false).responses;
    assert.equal(r!.status, 201);
    assert.equal(r!.reason, 'Made It');
    assert.equal(header(r!, 'x-one'), 'a');
    assert.equal(header(r!, 'x-two'), 'b');
    assert.equal(header(r!, 'injected'), undefined);
  });

  test('latin1 header values go out as one byte each', () => {
    const { c, request } = open(get('/'));
    request.setHeader('X-Name', 'café');
    request.respond('ok');
    assert.ok(c.written().includes(Buffer.from('X-Name: caf\xe9\r\n', 'latin1')));
  });

  test('cookies: RFC 6265 attributes; invalid names or values throw', () => {
    const { c, request } = open(get('/'));
    request.addCookie('sid', 'abc', {
      path: '/',
      domain: 'example.com',
      maxAge: 60,
      expires: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)),
      secure: true,
      httpOnly: true,
      sameSite: 'Strict',
    });
    request.addCookie('b', '2');
    assert.throws(() => request.addCookie('bad name', 'v'), InvalidArgumentError);
    assert.throws(() => request.addCookie('n', 'a;b'), InvalidArgumentError);
    assert.throws(() => request.addCookie('n', 'v', { path: 'x;y' }), InvalidArgumentError);
    assert.throws(() => formatCookie('n', 'v', { maxAge: 1.5 }), InvalidArgumentError);
    request.respond('');
    const [r] = parseResponses(c.written(), ['GET'], false).responses;
    assert.deepEqual(r!.headers.get('set-cookie'), [
      'sid=abc; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Max-Age=60; Domain=example.com; Path=/; Secure; HttpOnly; SameSite=Strict',
      'b=2',
    ]);
  });

  test('redirect sets 302 (or the code) and Location', () => {
    const { c, request } = open(get('/'));
    request.redirect('/elsewhere');
    request.finish();
    const [r] = parseResponses(c.written(), ['GET'], false).responses;
    assert.equal(r!.status, 302);
    assert.equal(header(r!, 'location'), '/elsewhere');
    assert.equal(header(r!, 'content-length'), '0');
    assert.throws(() => open(get('/')).request.redirect('/a\r\nX: y'), InvalidHeaderError);
  });

  test('the channel owns Transfer-Encoding and Connection; Connection: close from the resource is honoured', () => {
    const { c, request } = open(get('/'));
    request.setHeader('Transfer-Encoding', 'gzip');
    request.setHeader('Connection', 'keep-alive, close');
    request.write('abc');
    request.finish();
    const [r] = parseResponses(c.written(), ['GET']).responses;
    assert.equal(header(r!, 'transfer-encoding'), 'chunked');
    assert.deepEqual(r!.headers.get('connection'), ['close']);
    assert.equal(c.closed(), true);
  });

  test('response trailers follow a chunked body', () => {
    const { c, request } = open(get('/'));
    request.write('data');
    request.responseTrailers.set('X-Checksum', '42');
    request.finish();
    const [r] = parseResponses(c.written(), ['GET'], false).responses;
    assert.equal(r!.body.toString(), 'data');
    assert.equal(r!.trailers.get('x-checksum')?.[0], '42');
  });

  test('a declared Content-Length is enforced: too much throws, too little closes the connection', () => {
    const a = open(get('/'));
    a.request.setHeader('Content-Length', '5');
    a.request.write('abc');
    assert.throws(() => a.request.write('def'), ContentLengthMismatch);
    a.request.write('de');
    a.request.finish();
    assert.equal(
      parseResponses(a.c.written(), ['GET'], false).responses[0]!.body.toString(),
      'abcde',
    );
    assert.equal(a.c.closed(), false);

    const b = open(get('/'));
    b.request.setHeader('Content-Length', '10');
    b.request.write('abc');
    const logged: LogEvent[] = [];
    const remove = addObserver((e) => logged.push(e));
    try {
      b.request.finish();
    } finally {
      remove();
    }
    assert.equal(b.c.closed(), true);
    assert.equal(logged.length, 1, 'the short body is logged');
  });

  test('setHeader refuses a Content-Length that is not a decimal integer, at once', () => {
    const { c, request } = open(get('/'));
    for (const bad of [
      'abc',
      ' 5',
      '5 ',
      '-1',
      '+5',
      '0x10',
      '5, 5',
      '1.5',
      '',
      '99999999999999999',
    ]) {
      assert.throws(
        () => request.setHeader('Content-Length', bad),
        (e: unknown) =>
          e instanceof InvalidHeaderError && e.code === 'TORSION_ERR_HTTP_INVALID_HEADER',
        JSON.stringify(bad),
      );
      assert.throws(() => request.setHeader('content-LENGTH', bad), InvalidHeaderError);
    }
    assert.equal(request.responseHeaders.has('content-length'), false, 'nothing was set');
    request.setHeader('Content-Length', '0005');
    request.write('abcde');
    request.finish();
    const [r] = parseResponses(c.written(), ['GET'], false).responses;
    assert.equal(r!.body.toString(), 'abcde');
    assert.equal(c.closed(), false);
  });

  test('a malformed or conflicting Content-Length put in responseHeaders: the head is refused, nothing sent', () => {
    for (const [what, set] of [
      ['malformed', (r: Request) => r.responseHeaders.set('Content-Length', '-1')],
      [
        'two different values',
        (r: Request) => r.responseHeaders.add('Content-Length', '5').add('content-length', '6'),
      ],
    ] as const) {
      for (const end of ['write', 'finish', 'respond-304'] as const) {
        const { c, request } = open(get('/'));
        set(request);
        const attempt = (): void => {
          if (end === 'write') request.write('abcde');
          else if (end === 'finish') request.finish();
          else {
            request.setResponseCode(304);
            request.respond('');
          }
        };
        assert.throws(attempt, InvalidHeaderError, `${what}, ${end}`);
        assert.equal(c.written().length, 0, `${what}, ${end}: nothing written`);
        assert.equal(request.startedWriting, false);
        assert.equal(request.finished, false, `${what}, ${end}: not finished`);
        // The request can still be answered.
        request.responseHeaders.delete('content-length');
        request.setResponseCode(500);
        request.respond('error');
        const [r] = parseResponses(c.written(), ['GET'], false).responses;
        assert.equal(r!.status, 500);
        assert.equal(r!.body.toString(), 'error');
      }
    }
  });

  test('repeated identical Content-Length values are sent once', () => {
    const { c, request } = open(get('/'));
    request.responseHeaders.add('Content-Length', '3').add('Content-Length', '3');
    request.write('abc');
    request.finish();
    const [r] = parseResponses(c.written(), ['GET'], false).responses;
    assert.deepEqual(r!.headers.get('content-length'), ['3']);
    assert.equal(r!.body.toString(), 'abc');
    assert.equal(c.closed(), false);
  });

  test('a body short of its Content-Length at finish(): logged and the connection closes', () => {
    const events: LogEvent[] = [];
    const remove = addObserver((e) => {
      if (e.isError) events.push(e);
    });
    try {
      const { c, request } = open(get('/'));
      request.setHeader('Content-Length', '10');
      request.write('abc');
      request.finish();
      assert.equal(c.closed(), true);
      assert.equal(events.length, 1, 'one error logged');
      assert.match(events[0]!.message, /GET \/ cut short/);
      assert.equal(events[0]!.failure?.value instanceof ContentLengthMismatch, true);
      // A complete one logs nothing.
      const ok = open(get('/'));
      ok.request.setHeader('Content-Length', '3');
      ok.request.write('abc');
      ok.request.finish();
      assert.equal(events.length, 1);
    } finally {
      remove();
    }
  });

  test('an empty write sends the head; the first write carries it in the same write', () => {
    const { c, request } = open(get('/'));
    request.write('');
    assert.match(c.written().toString(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n$/);
    assert.equal(request.startedWriting, true);
    request.finish();
  });
});

describe('Request: write/finish rules', () => {
  test('write after finish throws TransportClosedError; finish twice throws', () => {
    const { request } = open(get('/'));
    request.finish();
    assert.equal(request.finished, true);
    assert.throws(() => request.write('x'), TransportClosedError);
    assert.throws(() => request.finish(), AlreadyCalledError);
    assert.throws(() => request.respond('x'), TransportClosedError);
  });

  test('after the connection is lost, write and finish do nothing', async () => {
    const { c, request } = open(get('/'));
    const d = request.notifyFinish();
    c.lose(new ConnectionLost());
    await assert.rejects(d.asPromise(), ConnectionLost);
    request.write('x');
    request.finish();
    request.finish();
    assert.equal(request.lost, true);
    await assert.rejects(request.notifyFinish().asPromise(), ConnectionLost);
  });

  test('notifyFinish fires on finish (and at once afterwards)', async () => {
    const { request } = open(get('/'));
    const order: string[] = [];
    request.notifyFinish().addCallback(() => {
      order.push('notified');
    });
    request.finish();
    order.push('after finish');
    await request.notifyFinish().asPromise();
    assert.deepEqual(order, ['notified', 'after finish']);
  });

  test('upgraded() is for a detached connection only, with a valid code, once', () => {
    const { c, request } = open(get('/'));
    assert.equal(request.channel.detached, false);
    assert.throws(() => request.upgraded(), InvalidArgumentError, 'not detached');
    assert.throws(() => request.upgraded(42), InvalidArgumentError, 'bad code');
    assert.equal(request.finished, false);
    assert.equal(request.code, 200);
    request.finish();
    assert.throws(() => request.upgraded(), AlreadyCalledError, 'already finished');
    assert.equal(c.closed(), false);
  });

  test('producers: one at a time; one registered after finish is stopped; finish unregisters', () => {
    const { c, request } = open(get('/'));
    const events: string[] = [];
    const p: IPushProducer = {
      pauseProducing: () => events.push('pause'),
      resumeProducing: () => events.push('resume'),
      stopProducing: () => events.push('stop'),
    };
    request.registerProducer(p, true);
    assert.throws(() => request.registerProducer(p, true), ProducerAlreadyRegistered);
    request.finish();
    assert.equal(request.producer, null);
    request.registerProducer(p, true);
    assert.deepEqual(events, ['stop']);
    assert.equal(c.transport.producer, c.channel);
  });
});

describe('Request: body() and sessions', () => {
  test("body() collects; its cap (the site's maxBodySize) answers 413 through the site", async () => {
    const root = new (class extends Resource {
      override isLeaf = true;
      override render(request: IRequest): RenderResult {
        return request.body().then((b) => `len ${b.length}`);
      }
    })();
    const c = memoryConnection(root, { maxBodySize: 10 });
    c.feed('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd');
    await new Promise((r) => setImmediate(r));
    // Over the cap, but small: answered at once, the rest dropped, the connection kept.
    c.feed('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n');
    await new Promise((r) => setImmediate(r));
    c.feed('x'.repeat(11));
    // Over the cap and more than the channel drops: Connection: close.
    c.feed('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n');
    await new Promise((r) => setImmediate(r));
    const rs = parseResponses(c.written(), ['POST', 'POST', 'POST']).responses;
    assert.equal(rs[0]!.body.toString(), 'len 4');
    assert.equal(rs[1]!.status, 413);
    assert.equal(header(rs[1]!, 'connection'), undefined);
    assert.equal(rs[2]!.status, 413);
    assert.equal(header(rs[2]!, 'connection'), 'close', 'the unread body is not waited for');
    assert.equal(c.closed(), true);
  });

  test('getSession: a new session sets its cookie; the cookie finds it again; TLS uses the secure name', () => {
    const root = new (class extends Resource {
      override isLeaf = true;
      override render(request: IRequest): RenderResult {
        const session = (request as Request).getSession();
        assert.equal((request as Request).getSession(), session);
        return session.uid;
      }
    })();
    const c = memoryConnection(root);
    c.feed(get('/'));
    const [first] = parseResponses(c.written(), ['GET'], false).responses;
    const uid = first!.body.toString();
    assert.match(uid, /^[0-9a-f]{32}$/);
    assert.deepEqual(first!.headers.get('set-cookie'), [
      `TORSION_SESSION=${uid}; Path=/; HttpOnly; SameSite=Lax`,
    ]);
    c.transport.clear();
    c.feed(get('/', `Cookie: TORSION_SESSION=${uid}\r\n`));
    const [second] = parseResponses(c.written(), ['GET'], false).responses;
    assert.equal(second!.body.toString(), uid);
    assert.equal(second!.headers.get('set-cookie'), undefined);

    const tls = memoryConnection(root, { secure: true });
    tls.feed(get('/'));
    const [s] = parseResponses(tls.written(), ['GET'], false).responses;
    assert.match(
      header(s!, 'set-cookie')!,
      /^TORSION_SECURE_SESSION=[0-9a-f]{32}; Path=\/; Secure; HttpOnly; SameSite=Lax$/,
    );
  });
});
