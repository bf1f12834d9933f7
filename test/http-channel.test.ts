/**
 * HTTPChannel in memory (StringTransport + Clock): framing, keep-alive,
 * pipelining order and bounds, 100-continue, HEAD, timeouts (one delayed
 * call), every byte split of a request, strictness (status, close, nothing
 * after the bad request answered), request body flow control and its
 * accounting, half-close, output flow control relay.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Clock } from '../src/reactor/clock.js';
import { Deferred } from '../src/reactor/deferred.js';
import { ConnectionLost, InvalidArgumentError } from '../src/reactor/errors.js';
import type { IPullProducer, IPushProducer } from '../src/reactor/interfaces.js';
import { StringTransport } from '../src/testing/string-transport.js';
import { HTTPChannel } from '../src/web/http/channel.js';
import type { Request } from '../src/web/http/request.js';
import type { IRequest, RenderResult } from '../src/web/iweb.js';
import { NOT_DONE_YET, Resource } from '../src/web/resource.js';
import { BAD, header, memoryConnection, parseResponses, type Response } from './http-wire.js';

// ---------------------------------------------------------------------- resources

/** Records what it renders; `/slow` answers when the test says, `/echo` reads the body. */
class Recorder extends Resource {
  override isLeaf = true;
  readonly seen: string[] = [];
  readonly slow: Deferred<string>[] = [];
  readonly requests: IRequest[] = [];

  override render(request: IRequest): RenderResult {
    this.seen.push(`${request.method} ${request.uri}`);
    this.requests.push(request);
    const path = request.path;
    if (path.startsWith('/slow')) {
      const d = new Deferred<string>();
      this.slow.push(d);
      return d;
    }
    if (path === '/echo') return request.body().then((b) => `got:${b.toString('latin1')}`);
    if (path === '/stream') {
      request.setHeader('Content-Type', 'text/plain');
      request.write('part1,');
      request.write(Buffer.from('part2'));
      request.finish();
      return NOT_DONE_YET;
    }
    if (path === '/nobody') return 'answered without reading';
    if (path === '/pending') return NOT_DONE_YET;
    return `${request.method} ${request.uri}`;
  }
}

function responses(
  conn: { written(): Buffer },
  methods: readonly string[],
  eof = true,
): Response[] {
  const r = parseResponses(conn.written(), methods, eof);
  assert.equal(r.rest, 0, 'trailing bytes after the responses');
  return r.responses;
}

const GET = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: h\r\n${extra}\r\n`;

// ---------------------------------------------------------------------- basics

describe('HTTPChannel: responses and keep-alive', () => {
  test('a GET gets status line, Date, Server, Content-Length; the connection stays open', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(GET('/a?x=1'));
    const [r] = responses(c, ['GET'], false);
    assert.equal(r!.status, 200);
    assert.match(
      r!.head,
      /^HTTP\/1\.1 200 OK\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\nServer: torsion\r\n/,
    );
    assert.equal(header(r!, 'content-length'), String('GET /a?x=1'.length));
    assert.equal(r!.body.toString(), 'GET /a?x=1');
    assert.equal(c.closed(), false);
    assert.equal(header(r!, 'connection'), undefined);
    // One delayed call: the idle timeout.
    assert.equal(c.clock.getDelayedCalls().length, 1);
  });

  test('streamed responses are chunked on HTTP/1.1 and close-delimited on HTTP/1.0', () => {
    const c = memoryConnection(new Recorder());
    c.feed(GET('/stream'));
    const [r] = responses(c, ['GET'], false);
    assert.equal(r!.framing, 'chunked');
    assert.equal(r!.body.toString(), 'part1,part2');
    assert.match(c.written().toString('latin1'), /\r\n6\r\npart1,\r\n5\r\npart2\r\n0\r\n\r\n$/);

    const d = memoryConnection(new Recorder());
    d.feed('GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const [s] = responses(d, ['GET']);
    assert.equal(s!.framing, 'close');
    assert.equal(header(s!, 'connection'), 'close');
    assert.equal(s!.body.toString(), 'part1,part2');
    assert.equal(d.closed(), true);
  });

  test('Connection: close is honoured both ways; HTTP/1.0 keep-alive is announced', () => {
    const a = memoryConnection(new Recorder());
    a.feed(GET('/', 'Connection: close\r\n'));
    const [r] = responses(a, ['GET']);
    assert.equal(header(r!, 'connection'), 'close');
    assert.equal(a.closed(), true);

    const b = memoryConnection(new Recorder());
    b.feed('GET / HTTP/1.0\r\n\r\n');
    assert.equal(header(responses(b, ['GET'])[0]!, 'connection'), 'close');
    assert.equal(b.closed(), true);

    const c = memoryConnection(new Recorder());
    c.feed('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n');
    const [k, l] = responses(c, ['GET', 'GET']);
    assert.equal(header(k!, 'connection'), 'keep-alive');
    assert.equal(header(l!, 'connection'), 'close');
    assert.equal(c.closed(), true);

    const root = new Recorder();
    const d = memoryConnection(root);
    const closer = new (class extends Resource {
      override render(request: IRequest): RenderResult {
        request.setHeader('Connection', 'close');
        return 'bye';
      }
    })();
    root.isLeaf = false;
    root.putChild('closer', closer);
    d.feed(`${GET('/closer')}${GET('/after')}`);
    const all = responses(d, ['GET', 'GET']);
    assert.equal(all.length, 1, 'nothing after a response that said close');
    assert.equal(header(all[0]!, 'connection'), 'close');
    assert.equal(d.closed(), true);
  });

  test('HEAD: the GET headers with Content-Length, no body; a streamed HEAD counts its length', () => {
    const c = memoryConnection(new Recorder());
    c.feed(
      `HEAD /abc HTTP/1.1\r\nHost: h\r\n\r\nHEAD /stream HTTP/1.1\r\nHost: h\r\n\r\n${GET('/z')}`,
    );
    const [a, b, z] = responses(c, ['HEAD', 'HEAD', 'GET'], false);
    assert.equal(header(a!, 'content-length'), String('HEAD /abc'.length));
    assert.equal(a!.body.length, 0);
    assert.equal(header(b!, 'content-length'), '11');
    assert.equal(header(b!, 'transfer-encoding'), undefined);
    assert.equal(z!.body.toString(), 'GET /z');
  });

  test('1xx/204/304 never carry a body (writes are counted, not sent)', () => {
    const root = new Resource();
    for (const code of [204, 304]) {
      root.putChild(
        String(code),
        new (class extends Resource {
          override render(request: IRequest): RenderResult {
            request.setResponseCode(code);
            request.write('ignored');
            request.finish();
            return NOT_DONE_YET;
          }
        })(),
      );
    }
    const c = memoryConnection(root);
    c.feed(`${GET('/204')}${GET('/304')}`);
    const [a, b] = responses(c, ['GET', 'GET'], false);
    assert.equal(a!.status, 204);
    assert.equal(b!.status, 304);
    assert.equal(header(a!, 'content-length'), undefined);
    assert.equal(header(a!, 'transfer-encoding'), undefined);
    assert.doesNotMatch(c.written().toString(), /ignored/);
    assert.equal(c.closed(), false);
  });
});

// ---------------------------------------------------------------------- splits

describe('HTTPChannel: any split of the bytes', () => {
  const WIRE =
    'GET /one?a=b HTTP/1.1\r\nHost: h\r\nX-Long: ' +
    'v'.repeat(40) +
    '\r\n\r\n' +
    'POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' +
    '3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n' +
    'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello' +
    'GET /last HTTP/1.1\r\nHost: h\r\n\r\n';
  const METHODS = ['GET', 'POST', 'POST', 'GET'];

  function bodies(rs: Response[]): string[] {
    return rs.map((r) => `${r.status} ${r.body.toString()}`);
  }

  const whole = ['200 GET /one?a=b', '200 got:abcdefg', '200 got:hello', '200 GET /last'];

  test('whole', async () => {
    const c = memoryConnection(new Recorder());
    c.feed(WIRE);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(bodies(responses(c, METHODS, false)), whole);
  });

  test('at every split point', async () => {
    const wire = Buffer.from(WIRE, 'latin1');
    for (let i = 1; i < wire.length; i++) {
      // Responses of asynchronous renders (promises) need a turn.
      const root = new Recorder();
      const c = memoryConnection(root);
      c.feed(wire.subarray(0, i));
      await new Promise((r) => setImmediate(r));
      c.feed(wire.subarray(i));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(bodies(responses(c, METHODS, false)), whole, `split at ${i}`);
    }
  });

  test('byte by byte', async () => {
    const wire = Buffer.from(WIRE, 'latin1');
    const root = new Recorder();
    const c = memoryConnection(root);
    for (let i = 0; i < wire.length; i++) {
      c.feed(wire.subarray(i, i + 1));
      if (i % 17 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(bodies(responses(c, METHODS, false)), whole);
  });
});

// ---------------------------------------------------------------------- pipelining

describe('HTTPChannel: pipelining', () => {
  test('responses strictly in order; only the head of the pipeline is dispatched', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(`${GET('/slow1')}${GET('/fast')}${GET('/slow2')}${GET('/fast2')}`);
    assert.deepEqual(root.seen, ['GET /slow1'], 'later requests wait');
    assert.equal(c.written().length, 0);
    root.slow[0]!.callback('one');
    assert.deepEqual(root.seen, ['GET /slow1', 'GET /fast', 'GET /slow2']);
    root.slow[1]!.callback('two');
    const rs = responses(c, ['GET', 'GET', 'GET', 'GET'], false);
    assert.deepEqual(
      rs.map((r) => r.body.toString()),
      ['one', 'GET /fast', 'two', 'GET /fast2'],
    );
  });

  test('at most 16 requests wait: then the parser and the socket pause', () => {
    const root = new Recorder();
    const c = memoryConnection(root, { maxPipelinedRequests: 16 });
    let wire = GET('/slow');
    for (let i = 0; i < 30; i++) wire += GET(`/q${i}`);
    c.feed(wire);
    assert.equal(c.transport.producerState, 'paused');
    assert.equal(c.channel.requests.length, 17);
    root.slow[0]!.callback('first');
    assert.equal(c.transport.producerState, 'producing');
    const rs = responses(c, Array(31).fill('GET'), false);
    assert.equal(rs.length, 31);
    assert.deepEqual(
      rs.slice(1, 4).map((r) => r.body.toString()),
      ['GET /q0', 'GET /q1', 'GET /q2'],
    );
  });

  test('pipelined responses rendered while reading leave in one write', () => {
    const c = memoryConnection(new Recorder());
    c.feed(`${GET('/1')}${GET('/2')}${GET('/3')}`);
    assert.equal(c.transport.written.length, 1);
    assert.equal(responses(c, ['GET', 'GET', 'GET'], false).length, 3);
  });
});

// ---------------------------------------------------------------------- output encoding

/** Answers `/len/N` with N bytes ('x'), `/big-header` with a 40 KiB header, `/wait` later. */
class Sizes extends Resource {
  override isLeaf = true;
  readonly waiting: IRequest[] = [];
  override render(request: IRequest): RenderResult {
    const path = request.path;
    if (path.startsWith('/len/')) return Buffer.alloc(Number(path.slice(5)), 0x78);
    if (path === '/big-header') {
      request.setHeader('X-Big', 'b'.repeat(40 * 1024));
      return 'big header';
    }
    if (path === '/reason') {
      request.setResponseCode(299, 'Caf\xe9 Fine');
      request.setHeader('Date', 'Sun, 06 Nov 1994 08:49:37 GMT');
      return 'r';
    }
    if (path === '/wait') {
      this.waiting.push(request);
      return NOT_DONE_YET;
    }
    return 'ok';
  }
}

describe('HTTPChannel: response encoding', () => {
  test('Content-Length of every size (cached lines and computed ones), each ending', () => {
    const lengths = [0, 1, 9, 10, 99, 1023, 1024, 4096, 4097, 20000, 70000];
    const c = memoryConnection(new Sizes());
    c.feed(lengths.map((n) => GET(`/len/${n}`)).join(''));
    const rs = responses(
      c,
      lengths.map(() => 'GET'),
      false,
    );
    assert.deepEqual(
      rs.map((r) => [header(r, 'content-length'), r.body.length]),
      lengths.map((n) => [String(n), n]),
    );
    for (const r of rs)
      assert.equal(
        r.body.every((b) => b === 0x78),
        true,
        'body bytes',
      );
    // The same lengths ending with Connection: close, and with HTTP/1.0 keep-alive.
    for (const [wire, connection] of [
      ['GET /len/14 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', 'close'],
      ['GET /len/14 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', 'keep-alive'],
      ['GET /len/5000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', 'keep-alive'],
    ] as const) {
      const d = memoryConnection(new Sizes());
      d.feed(wire);
      const [r] = responses(d, ['GET'], false);
      assert.equal(header(r!, 'connection'), connection);
      assert.match(r!.head, /\r\nContent-Length: \d+\r\nConnection: [a-z-]+\r\n\r\n$/);
    }
  });

  test('a head too big to gather is written on its own, in order', () => {
    const c = memoryConnection(new Sizes());
    c.feed(`${GET('/len/3')}${GET('/big-header')}${GET('/len/4')}`);
    const rs = responses(c, ['GET', 'GET', 'GET'], false);
    assert.deepEqual(
      rs.map((r) => r.body.toString()),
      ['xxx', 'big header', 'xxxx'],
    );
    assert.equal(header(rs[1]!, 'x-big')!.length, 40 * 1024);
  });

  test('a custom reason phrase and a resource-set Date are encoded as latin1', () => {
    const c = memoryConnection(new Sizes());
    c.feed(GET('/reason'));
    const text = c.written().toString('latin1');
    assert.match(
      text,
      /^HTTP\/1\.1 299 Caf\xe9 Fine\r\nServer: torsion\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n/,
    );
    assert.equal((text.match(/\r\nDate: /g) ?? []).length, 1, 'the channel adds no second Date');
  });

  test('a response written for another connection while one reads goes out at once, and both stay in order', () => {
    const root = new Sizes();
    const a = memoryConnection(root);
    const b = memoryConnection(root, {}, a.site);
    b.feed(GET('/wait'));
    const waiting = root.waiting[0]!;
    // While `a` handles its read, its resource answers `b`'s pending request.
    const answering = new (class extends Resource {
      override isLeaf = true;
      override render(request: IRequest): RenderResult {
        if (!waiting.finished) {
          waiting.setHeader('X-From', 'a');
          waiting.write('answered from a');
          waiting.finish();
        }
        return `a:${request.path}`;
      }
    })();
    const c = memoryConnection(answering, {}, undefined);
    c.feed(`${GET('/1')}${GET('/2')}`);
    assert.deepEqual(
      responses(c, ['GET', 'GET'], false).map((r) => r.body.toString()),
      ['a:/1', 'a:/2'],
    );
    const [rb] = responses(b, ['GET'], false);
    assert.equal(rb!.body.toString(), 'answered from a');
    assert.equal(header(rb!, 'x-from'), 'a');
  });
});

// ---------------------------------------------------------------------- strictness

describe('HTTPChannel: strictness', () => {
  for (const [name, wire, status] of BAD) {
    test(`${name} → ${status}, close, and the next request is never answered`, async () => {
      const root = new Recorder();
      const c = memoryConnection(root);
      c.feed(`${wire}${GET('/never')}`);
      await new Promise((r) => setImmediate(r));
      const { responses: rs, rest } = parseResponses(c.written(), ['GET', 'GET'], true);
      assert.equal(rest, 0);
      assert.equal(rs.length, 1);
      assert.equal(rs[0]!.status, status);
      assert.equal(header(rs[0]!, 'connection'), 'close');
      assert.equal(c.closed(), true);
      assert.ok(!root.seen.includes('GET /never'));
    });
  }

  test('limits from the site options: a body over limits.maxBodySize is 413, bare LF refused on request', () => {
    const a = memoryConnection(new Recorder(), { limits: { maxBodySize: 10 } });
    a.feed(`POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n${GET('/never')}`);
    const [r] = responses(a, ['POST', 'GET']);
    assert.equal(r!.status, 413);
    assert.equal(a.closed(), true);
    const b = memoryConnection(new Recorder(), { limits: { allowBareLF: false } });
    b.feed('GET / HTTP/1.1\nHost: h\n\n');
    assert.equal(responses(b, ['GET'])[0]!.status, 400);
    assert.equal(b.closed(), true);
  });

  test('a bad request behind valid pipelined ones: they are answered first, then the error', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(`${GET('/slow')}${GET('/ok')}GET / HTTP/1.1\r\nHost : x\r\n\r\n${GET('/never')}`);
    assert.equal(c.closed(), false);
    root.slow[0]!.callback('slow');
    const rs = responses(c, ['GET', 'GET', 'GET', 'GET']);
    assert.deepEqual(
      rs.map((r) => r.status),
      [200, 200, 400],
    );
    assert.deepEqual(root.seen, ['GET /slow', 'GET /ok']);
    assert.equal(c.closed(), true);
  });

  test('a malformed body of the request in progress fails its read; the site answers 400 and closes', async () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(
      `POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nXYZ\r\n${GET('/never')}`,
    );
    await new Promise((r) => setImmediate(r));
    const rs = responses(c, ['POST', 'GET']);
    assert.equal(rs.length, 1);
    assert.equal(rs[0]!.status, 400);
    assert.equal(header(rs[0]!, 'connection'), 'close');
    assert.equal(c.closed(), true);
  });

  test('a request whose body breaks before it is dispatched is dropped; the error answers in its place', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(`${GET('/slow')}POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nQ\r\n`);
    root.slow[0]!.callback('s');
    const rs = responses(c, ['GET', 'POST']);
    assert.deepEqual(
      rs.map((r) => r.status),
      [200, 400],
    );
    assert.deepEqual(root.seen, ['GET /slow']);
  });

  test('an undecodable path is a 400 for that request only (the framing was fine)', () => {
    const c = memoryConnection(new Recorder());
    c.feed(`${GET('/a%ZZ')}${GET('/%C3%A9t%C3%A9')}${GET('/%FF')}`);
    const [a, b, bad] = responses(c, ['GET', 'GET', 'GET'], false);
    assert.equal(a!.status, 400, 'not an escape');
    assert.equal(b!.status, 200);
    assert.equal(bad!.status, 400, 'not UTF-8');
    assert.equal(c.closed(), false);
  });
});

// ---------------------------------------------------------------------- 100-continue

describe('HTTPChannel: Expect: 100-continue', () => {
  test('100 Continue goes out when the resource first asks for the body', async () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed('POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
    assert.equal(c.written().toString(), 'HTTP/1.1 100 Continue\r\n\r\n');
    c.feed('data');
    await new Promise((r) => setImmediate(r));
    const { responses: rs, informational } = parseResponses(c.written(), ['POST'], false);
    assert.equal(informational.length, 1);
    assert.equal(rs[0]!.body.toString(), 'got:data');
    assert.equal(c.closed(), false);
  });

  test('a resource that answers without reading: no 100, Connection: close, closed', () => {
    const c = memoryConnection(new Recorder());
    c.feed(`POST /nobody HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n`);
    assert.doesNotMatch(c.written().toString(), /100 Continue/);
    const [r] = responses(c, ['POST']);
    assert.equal(header(r!, 'connection'), 'close');
    assert.equal(c.closed(), true);
  });

  test('a client that sent the body without waiting: the 100 (if any) precedes the response', async () => {
    const c = memoryConnection(new Recorder());
    c.feed('POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n');
    c.feed('ok');
    await new Promise((r) => setImmediate(r));
    assert.match(c.written().toString(), /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
    assert.equal(responses(c, ['POST'], false)[0]!.body.toString(), 'got:ok');
    const d = memoryConnection(new Recorder());
    d.channel.dataReceived(
      Buffer.from(
        'POST /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok',
      ),
    );
    assert.doesNotMatch(d.written().toString(), /100 Continue/, 'not read, not asked');
  });
});

describe('HTTPChannel: Expect other than 100-continue (417)', () => {
  test('no body: 417 in its turn, not dispatched, the connection lives on', async () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(
      'GET /slow HTTP/1.1\r\nHost: h\r\n\r\n' +
        'GET /x HTTP/1.1\r\nHost: h\r\nExpect: Foo\r\n\r\n' +
        'GET /y HTTP/1.1\r\nHost: h\r\n\r\n',
    );
    assert.equal(c.written().length, 0, 'nothing before the slow response');
    root.slow[0]!.callback('slow');
    const rs = responses(c, ['GET', 'GET', 'GET'], false);
    assert.deepEqual(
      rs.map((r) => r.status),
      [200, 417, 200],
    );
    assert.equal(rs[1]!.reason, 'Expectation Failed');
    assert.equal(header(rs[1]!, 'connection'), undefined, 'keep-alive');
    assert.match(rs[1]!.body.toString(), /^417 Expectation Failed/);
    assert.deepEqual(root.seen, ['GET /slow', 'GET /y']);
    assert.equal(c.closed(), false);
  });

  test('a body complete before its turn: 417, the body dropped, the connection lives on', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(
      'GET /slow HTTP/1.1\r\nHost: h\r\n\r\n' +
        'POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, x-other\r\nContent-Length: 4\r\n\r\ndata' +
        'GET /after HTTP/1.1\r\nHost: h\r\n\r\n',
    );
    root.slow[0]!.callback('slow');
    const rs = responses(c, ['GET', 'POST', 'GET'], false);
    assert.deepEqual(
      rs.map((r) => r.status),
      [200, 417, 200],
    );
    assert.equal(header(rs[1]!, 'connection'), undefined);
    assert.doesNotMatch(c.written().toString(), /100 Continue/);
    assert.deepEqual(root.seen, ['GET /slow', 'GET /after']);
    assert.equal(c.closed(), false);
  });

  test('a body still arriving in its turn: 417 with Connection: close (it may be withheld)', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed('POST /echo HTTP/1.1\r\nHost: h\r\nExpect: x-other\r\nContent-Length: 4\r\n\r\nda');
    const [r] = responses(c, ['POST']);
    assert.equal(r!.status, 417);
    assert.equal(header(r!, 'connection'), 'close');
    assert.equal(c.closed(), true);
    assert.deepEqual(root.seen, []);
  });

  test('a body not yet received: 417 with Connection: close, then closed (never read as requests)', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed('PUT /echo HTTP/1.1\r\nHost: h\r\nExpect: wait-for-me\r\nContent-Length: 40\r\n\r\n');
    const [r] = responses(c, ['PUT']);
    assert.equal(r!.status, 417);
    assert.equal(header(r!, 'connection'), 'close');
    assert.equal(c.closed(), true);
    c.feed('GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n');
    assert.deepEqual(root.seen, []);
    const chunked = memoryConnection(root);
    chunked.feed(
      'POST /echo HTTP/1.1\r\nHost: h\r\nExpect: x\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
    assert.equal(responses(chunked, ['POST'])[0]!.status, 417);
    assert.equal(chunked.closed(), true);
    assert.deepEqual(root.seen, []);
  });

  test('HTTP/1.0 ignores Expect (as it does 100-continue)', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed('GET /old HTTP/1.0\r\nExpect: foo\r\n\r\n');
    assert.equal(responses(c, ['GET'])[0]!.status, 200);
    assert.deepEqual(root.seen, ['GET /old']);
  });
});

// ---------------------------------------------------------------------- unread bodies

describe('HTTPChannel: bodies the resource does not read', () => {
  test('a small unread remainder is dropped and the connection lives on', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed('POST /nobody HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345');
    c.feed(`67890${GET('/next')}`);
    const rs = responses(c, ['POST', 'GET'], false);
    assert.deepEqual(
      rs.map((r) => r.body.toString()),
      ['answered without reading', 'GET /next'],
    );
    assert.equal(c.closed(), false);
  });

  test('a large unread remainder closes the connection after the response', () => {
    const c = memoryConnection(new Recorder());
    c.feed('POST /nobody HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\nabc');
    assert.equal(responses(c, ['POST']).length, 1);
    assert.equal(c.closed(), true);
  });

  test('a chunked remainder is dropped up to the bound, then the connection closes', () => {
    const c = memoryConnection(new Recorder(), { maxDiscardedBody: 100 });
    c.feed('POST /nobody HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n');
    assert.equal(c.closed(), false);
    c.feed(`40\r\n${'a'.repeat(64)}\r\n`);
    assert.equal(c.closed(), false);
    c.feed(`40\r\n${'a'.repeat(64)}\r\n`);
    assert.equal(c.closed(), true);
  });
});

// ---------------------------------------------------------------------- request body flow control

describe('HTTPChannel: request body flow control', () => {
  test('a resource that does not read pauses the client past 64 KiB; reading resumes it', async () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    const total = 1024 * 1024;
    c.feed(`POST /pending HTTP/1.1\r\nHost: h\r\nContent-Length: ${total}\r\n\r\n`);
    const piece = Buffer.alloc(16 * 1024, 0x61);
    let fed = 0;
    // A transport only delivers while its reading is not paused.
    while (c.transport.producerState === 'producing' && fed < total) {
      c.feed(piece);
      fed += piece.length;
    }
    assert.equal(c.transport.producerState, 'paused');
    assert.ok(fed <= 64 * 1024 + piece.length, `fed ${fed}`);
    const request = root.requests[0] as Request;
    const body = request.bodyStream();
    assert.ok(body.buffered <= 64 * 1024 + piece.length);
    // Reading brings it under half: reading resumes.
    let read = 0;
    while (c.transport.producerState === 'paused') read += (await body.read()).length;
    assert.ok(read >= 32 * 1024);
    // Feed the rest, reading as a consumer would.
    let sum = read;
    while (fed < total) {
      if (c.transport.producerState === 'producing') {
        c.feed(piece);
        fed += piece.length;
      } else {
        sum += (await body.read()).length;
      }
      assert.ok(body.buffered <= 64 * 1024 + piece.length);
    }
    for (;;) {
      const p = await body.read();
      if (p.length === 0) break;
      sum += p.length;
    }
    assert.equal(sum, total);
    request.finish();
    assert.equal(c.closed(), false);
  });

  test('a client lost mid-body: the pending read rejects with ConnectionLost; no timer left', async () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed('POST /pending HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc');
    const request = root.requests[0] as Request;
    const body = request.bodyStream();
    assert.equal((await body.read()).toString(), 'abc');
    const pending = body.read();
    const finished = request.notifyFinish();
    c.lose();
    await assert.rejects(pending, ConnectionLost);
    await assert.rejects(finished.asPromise(), ConnectionLost);
    assert.equal(c.clock.getDelayedCalls().length, 0);
    assert.equal(c.site.channels.size, 0);
    // After the loss, write and finish do nothing.
    request.write('x');
    request.finish();
  });

  test('the client FIN (default): finished responses are flushed, the rest are lost at once, then close', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(`${GET('/a')}${GET('/slow')}${GET('/b')}`);
    const slow = root.requests[1] as Request;
    const stops: string[] = [];
    const pull: IPullProducer = {
      resumeProducing() {},
      stopProducing() {
        stops.push('pull');
      },
    };
    slow.registerProducer(pull, false);
    const outcome: unknown[] = [];
    slow.notifyFinish().addCallbacks(
      () => {
        outcome.push('finished');
        return null;
      },
      (f) => {
        outcome.push(f.value);
        return null;
      },
    );
    c.channel.readConnectionLost();
    assert.equal(outcome.length, 1, 'notifyFinish fired at once');
    assert.equal(outcome[0] instanceof ConnectionLost, true, 'with ConnectionLost');
    assert.deepEqual(stops, ['pull'], 'the pull producer stopped once');
    assert.equal(slow.producer, null);
    assert.equal(c.transport.producer, null, 'the transport holds no producer');
    assert.deepEqual(
      responses(c, ['GET']).map((r) => r.body.toString()),
      ['GET /a'],
    );
    assert.deepEqual(root.seen, ['GET /a', 'GET /slow'], '/b never dispatched');
    assert.equal(c.closed(), true);
    assert.equal(c.site.channels.size, 0);
    assert.equal(c.clock.getDelayedCalls().length, 0, 'no timer left');
    // The late answer goes nowhere.
    root.slow[0]!.callback('late');
    assert.doesNotMatch(c.written().toString(), /late/);
  });

  test('allowHalfOpen must be a boolean', () => {
    assert.throws(
      () => new HTTPChannel({ allowHalfOpen: 'yes' as unknown as boolean }),
      InvalidArgumentError,
    );
  });

  test('allowHalfOpen: a client that half-closes mid-body: the body fails with ConnectionLost; earlier requests are answered', async () => {
    const root = new Recorder();
    const c = memoryConnection(root, { allowHalfOpen: true });
    c.feed(`${GET('/slow')}POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc`);
    c.channel.readConnectionLost();
    root.slow[0]!.callback('first');
    const rs = responses(c, ['GET', 'POST']);
    assert.deepEqual(
      rs.map((r) => r.body.toString()),
      ['first'],
    );
    assert.equal(c.closed(), true);
  });

  test('allowHalfOpen: a half-close after complete requests: they are all answered, then close', () => {
    const root = new Recorder();
    const c = memoryConnection(root, { allowHalfOpen: true });
    c.feed(`${GET('/slow')}${GET('/b')}`);
    c.channel.readConnectionLost();
    assert.equal(c.closed(), false);
    root.slow[0]!.callback('a');
    assert.deepEqual(
      responses(c, ['GET', 'GET']).map((r) => r.body.toString()),
      ['a', 'GET /b'],
    );
    assert.equal(c.closed(), true);
  });
});

// ---------------------------------------------------------------------- timeouts

describe('HTTPChannel: timeouts (one delayed call)', () => {
  test('idle keep-alive: closed silently after idleTimeout', () => {
    const c = memoryConnection(new Recorder(), { idleTimeout: 60 });
    c.feed(GET('/'));
    const before = c.written().length;
    c.clock.advance(59);
    assert.equal(c.closed(), false);
    c.clock.advance(1);
    assert.equal(c.closed(), true);
    assert.equal(c.written().length, before);
    assert.equal(c.clock.getDelayedCalls().length, 0);
  });

  test('header timeout: from the first byte of a head, not pushed back by trickling bytes; 408', () => {
    const c = memoryConnection(new Recorder(), { headerTimeout: 30, idleTimeout: 60 });
    c.feed('GET / HTTP/1.1\r\n');
    for (let i = 0; i < 29; i++) {
      c.clock.advance(1);
      c.feed('X: y\r\n');
    }
    assert.equal(c.closed(), false);
    c.clock.advance(1);
    const [r] = responses(c, ['GET']);
    assert.equal(r!.status, 408);
    assert.equal(c.closed(), true);
  });

  test('no timeout while a request is processed; the idle timeout restarts after it', () => {
    const root = new Recorder();
    const c = memoryConnection(root, { idleTimeout: 10 });
    c.feed(GET('/slow'));
    c.clock.advance(100);
    assert.equal(c.closed(), false);
    root.slow[0]!.callback('done');
    c.clock.advance(9);
    assert.equal(c.closed(), false);
    c.clock.advance(1);
    assert.equal(c.closed(), true);
  });

  test('the same delayed call is reset across requests', () => {
    const c = memoryConnection(new Recorder());
    c.feed(GET('/1'));
    const [call] = c.clock.getDelayedCalls();
    c.clock.advance(5);
    c.feed(GET('/2'));
    assert.deepEqual(c.clock.getDelayedCalls(), [call]);
    assert.equal(call!.getTime(), 65);
  });

  test('body timeout (opt-in): 408 when body bytes stop coming', async () => {
    const root = new Recorder();
    const c = memoryConnection(root, { bodyTimeout: 5 });
    c.feed('POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab');
    c.clock.advance(4);
    c.feed('cd');
    c.clock.advance(4);
    assert.equal(c.closed(), false);
    c.clock.advance(1);
    await new Promise((r) => setImmediate(r));
    const [r] = responses(c, ['POST']);
    assert.equal(r!.status, 408);
    assert.equal(c.closed(), true);
  });

  test('a connection that does not close after our FIN is aborted after closeTimeout', () => {
    const clock = new Clock();
    const channel = new HTTPChannel({ reactor: clock, closeTimeout: 15 });
    const t = new StringTransport();
    channel.makeConnection(t);
    channel.dataReceived(Buffer.from(GET('/', 'Connection: close\r\n')));
    assert.equal(t.disconnecting, true);
    assert.equal(t.aborted, false);
    clock.advance(15);
    assert.equal(t.aborted, true);
  });
});

// ---------------------------------------------------------------------- output flow control

describe('HTTPChannel: output flow control', () => {
  class Push implements IPushProducer {
    events: string[] = [];
    pauseProducing() {
      this.events.push('pause');
    }
    resumeProducing() {
      this.events.push('resume');
    }
    stopProducing() {
      this.events.push('stop');
    }
  }

  test("the transport's pause and resume reach the request's push producer; reading stops meanwhile", () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(GET('/pending'));
    const request = root.requests[0]!;
    const producer = new Push();
    request.registerProducer(producer, true);
    assert.equal(c.transport.producer, c.channel);
    c.channel.pauseProducing();
    assert.deepEqual(producer.events, ['pause']);
    assert.equal(c.transport.producerState, 'paused');
    c.channel.resumeProducing();
    assert.deepEqual(producer.events, ['pause', 'resume']);
    assert.equal(c.transport.producerState, 'producing');
    request.unregisterProducer();
    request.finish();
    c.lose(new ConnectionLost());
    assert.deepEqual(producer.events, ['pause', 'resume']);
  });

  test('a push producer registered while the client is not reading starts paused; the loss stops it', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(GET('/pending'));
    c.channel.pauseProducing();
    const producer = new Push();
    root.requests[0]!.registerProducer(producer, true);
    assert.deepEqual(producer.events, ['pause']);
    c.lose(new ConnectionLost());
    assert.deepEqual(producer.events, ['pause', 'stop']);
  });

  test('a pull producer is registered with the transport directly, then the channel again', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(GET('/pending'));
    const request = root.requests[0]!;
    const pull: IPullProducer = { resumeProducing() {}, stopProducing() {} };
    request.registerProducer(pull, false);
    assert.equal(c.transport.producer, pull);
    assert.equal(c.transport.streaming, false);
    request.unregisterProducer();
    assert.equal(c.transport.producer, c.channel);
    request.finish();
  });
});

// ---------------------------------------------------------------------- upgrade and CONNECT

describe('HTTPChannel: Upgrade and CONNECT requests', () => {
  test('a declined Upgrade (a normal response): parsing goes on after it', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(
      'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' +
        GET('/after'),
    );
    const rs = responses(c, ['GET', 'GET'], false);
    assert.deepEqual(
      rs.map((r) => r.body.toString()),
      ['GET /ws', 'GET /after'],
    );
    assert.equal(c.transport.producerState, 'producing');
  });

  test('an Upgrade answered later: nothing after it is parsed until then', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(
      `GET /slow HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n${GET('/after')}`,
    );
    assert.deepEqual(root.seen, ['GET /slow']);
    assert.equal(c.channel.requests.length, 1, 'the bytes after it stay unparsed');
    assert.equal(c.transport.producerState, 'paused');
    root.slow[0]!.callback('declined');
    const rs = responses(c, ['GET', 'GET'], false);
    assert.deepEqual(
      rs.map((r) => r.body.toString()),
      ['declined', 'GET /after'],
    );
  });

  test('a declined CONNECT: the connection goes on as HTTP', () => {
    const root = new Recorder();
    const c = memoryConnection(root);
    c.feed(`CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n${GET('/next')}`);
    const rs = responses(c, ['CONNECT', 'GET'], false);
    assert.deepEqual(
      rs.map((r) => r.body.toString()),
      ['CONNECT example.com:443', 'GET /next'],
    );
  });
});
