import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IPv4Address } from '../src/reactor/address.js';
import { Deferred } from '../src/reactor/deferred.js';
import {
  AlreadyCalledError,
  ConnectionLost,
  InvalidArgumentError,
  ProducerAlreadyRegistered,
  TransportClosedError,
} from '../src/reactor/errors.js';
import { Failure } from '../src/reactor/failure.js';
import type { IPullProducer, IPushProducer } from '../src/reactor/interfaces.js';
import { DummyRequest, formatCookie, render } from '../src/testing/dummy-request.js';
import { BodyDiscardedError } from '../src/web/http/body.js';
import { HTTPError, InvalidHeaderError } from '../src/web/http/errors.js';
import { ContentLengthMismatch } from '../src/web/http/request.js';
import type { IBodySink, IRequest, RenderResult } from '../src/web/iweb.js';
import { NOT_DONE_YET, Resource } from '../src/web/resource.js';

/** A sink recording what it gets, as strings. */
function recordingSink(onData?: (data: Buffer) => void): IBodySink & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    dataReceived(data) {
      events.push(`data:${data.toString()}`);
      onData?.(data);
    },
    bodyEnded() {
      events.push('end');
    },
    bodyFailed(reason: Failure) {
      events.push(`failed:${reason.value.name}`);
    },
  };
}

describe('DummyRequest: the request side', () => {
  test('from postpath segments (Twisted style)', () => {
    const r = new DummyRequest(['a', 'b c']);
    assert.deepEqual(r.postpath, ['a', 'b c']);
    assert.deepEqual(r.prepath, []);
    assert.equal(r.uri, '/a/b%20c');
    assert.equal(r.path, '/a/b%20c');
    assert.equal(r.method, 'GET');
    assert.equal(r.clientproto, 'HTTP/1.1');
    assert.equal(r.code, 200);
    assert.equal(r.responseCode, null);
  });

  test('from a URI: path, decoded postpath, args', () => {
    const r = new DummyRequest({
      uri: '/x/%E2%9C%93/y%2Fz/?a=1&b=two+words&a=3&empty=',
      method: 'POST',
      headers: { Host: 'example.com:8080', Cookie: 'sid=abc; theme="dark"' },
    });
    assert.equal(r.path, '/x/%E2%9C%93/y%2Fz/');
    assert.deepEqual(r.postpath, ['x', '✓', 'y/z', '']);
    assert.deepEqual(r.args.get('a'), ['1', '3']);
    assert.deepEqual(r.args.get('b'), ['two words']);
    assert.deepEqual(r.args.get('empty'), ['']);
    assert.equal(r.getHeader('HOST'), 'example.com:8080');
    assert.equal(r.getRequestHostname(), 'example.com');
    assert.equal(r.getCookie('sid'), 'abc');
    assert.equal(r.getCookie('theme'), 'dark');
    assert.equal(r.getCookie('nope'), null);
    assert.deepEqual(new DummyRequest({ uri: 'http://h/p/q?x' }).postpath, ['p', 'q']);
    assert.deepEqual(new DummyRequest({ uri: '/%zz' }).postpath, ['%zz']);
    assert.equal(new DummyRequest({ headers: { Host: '[::1]:80' } }).getRequestHostname(), '::1');
    const absolute = new DummyRequest({ uri: 'http://example.org:81/x', headers: { Host: 'h' } });
    assert.equal(absolute.getRequestHostname(), 'example.org', 'the target authority wins');
    assert.equal(new DummyRequest().getRequestHostname(), 'dummy');
    assert.throws(() => new DummyRequest().setHeader('Content-Length', 'abc'), InvalidHeaderError);
  });

  test('rejects a bad method or URI at construction', () => {
    assert.throws(() => new DummyRequest({ method: 'G T' }), InvalidArgumentError);
    assert.throws(() => new DummyRequest({ uri: 'relative' }), InvalidArgumentError);
  });

  test('addresses and isSecure are options', () => {
    const client = new IPv4Address('TCP', '10.0.0.1', 5555);
    const r = new DummyRequest({ client, secure: true });
    assert.equal(r.getClientAddress(), client);
    assert.equal(r.isSecure(), true);
    assert.equal((r.getHost() as IPv4Address).port, 80);
  });
});

describe('DummyRequest: the response side', () => {
  test('records writes (copied), headers, code and finish', () => {
    const r = new DummyRequest();
    const chunk = Buffer.from('abc');
    r.setResponseCode(201, 'Made');
    r.setHeader('Content-Type', 'text/plain');
    assert.equal(r.startedWriting, false);
    r.write(chunk);
    chunk.fill(0);
    r.write('déf');
    r.write('');
    assert.equal(r.startedWriting, true);
    assert.equal(r.writtenText(), 'abcdéf');
    assert.equal(r.written.length, 2);
    assert.equal(r.code, 201);
    assert.equal(r.responseCode, 201);
    assert.equal(r.responseMessage, 'Made');
    r.finish();
    assert.equal(r.finished, true);
    assert.equal(r.finishCount, 1);
    assert.throws(() => r.write('more'), TransportClosedError);
    assert.throws(() => r.finish(), AlreadyCalledError);
    assert.equal(r.finishCount, 2);
  });

  test('writes past a declared Content-Length throw ContentLengthMismatch', () => {
    const r = new DummyRequest();
    r.setHeader('Content-Length', '4');
    r.write('abc');
    assert.throws(() => r.write('de'), ContentLengthMismatch);
    r.write('d');
    assert.equal(r.writtenText(), 'abcd');
  });

  test('finish unregisters the producer; registering after finish stops it', () => {
    const r = new DummyRequest();
    let stops = 0;
    const producer: IPushProducer = {
      pauseProducing() {},
      resumeProducing() {},
      stopProducing: () => stops++,
    };
    r.registerProducer(producer, true);
    r.finish();
    assert.equal(r.producer, null);
    assert.equal(stops, 0);
    r.registerProducer(producer, true);
    assert.equal(stops, 1);
    assert.equal(r.producer, null);
  });

  test('HEAD and bodiless statuses record nothing but count', () => {
    const head = new DummyRequest({ method: 'HEAD' });
    head.write('hidden');
    assert.deepEqual(head.written, []);
    assert.equal(head.bytesWritten, 6);
    const noContent = new DummyRequest();
    noContent.setResponseCode(204);
    noContent.write('x');
    assert.deepEqual(noContent.written, []);
  });

  test('setHeader refuses response splitting; cookies are formatted', () => {
    const r = new DummyRequest();
    assert.throws(() => r.setHeader('X', 'a\r\nInjected: 1'));
    assert.throws(() => r.setResponseCode(99), InvalidArgumentError);
    r.addCookie('sid', 'abc', { path: '/', httpOnly: true, sameSite: 'Lax', maxAge: 60 });
    r.addCookie('b', '2');
    assert.deepEqual(r.responseHeaders.getAll('set-cookie'), [
      'sid=abc; Max-Age=60; Path=/; HttpOnly; SameSite=Lax',
      'b=2',
    ]);
    assert.throws(() => r.addCookie('bad name', 'x'), InvalidArgumentError);
    assert.throws(() => r.addCookie('n', 'a;b'), InvalidArgumentError);
    assert.throws(() => formatCookie('n', 'v', { path: '/;x' }), InvalidArgumentError);
    assert.equal(
      formatCookie('n', 'v', { expires: new Date(0), domain: 'example.com', secure: true }),
      'n=v; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; Secure',
    );
    r.redirect('/elsewhere');
    assert.equal(r.code, 302);
    assert.equal(r.responseHeaders.get('location'), '/elsewhere');
  });

  test('notifyFinish fires on finish, and at once once finished', async () => {
    const r = new DummyRequest();
    const d = r.notifyFinish();
    assert.equal(d.called, false);
    r.finish();
    assert.equal(d.called, true);
    await d;
    assert.equal(r.notifyFinish().called, true);
  });

  test('connectionLost fails notifyFinish, stops the producer, breaks the body', async () => {
    const r = new DummyRequest({ bodyOpen: true, method: 'POST' });
    const d = r.notifyFinish();
    let stopped = 0;
    r.registerProducer(
      { pauseProducing() {}, resumeProducing() {}, stopProducing: () => stopped++ },
      true,
    );
    const sink = recordingSink();
    r.bodyStream().deliverTo(sink);
    r.requestBody.push(Buffer.from('part'));
    r.connectionLost();
    assert.equal(stopped, 1);
    assert.equal(r.producer, null);
    assert.deepEqual(sink.events, ['data:part', 'failed:ConnectionLost']);
    await assert.rejects(d.asPromise(), ConnectionLost);
    await assert.rejects(r.notifyFinish().asPromise(), ConnectionLost);
    r.write('dropped');
    assert.deepEqual(r.written, []);
    r.finish();
    assert.equal(r.finished, false);
    assert.ok(r.lost);
  });

  test('a second producer throws; a push producer is only recorded', () => {
    const r = new DummyRequest();
    const push: IPushProducer = {
      pauseProducing() {},
      resumeProducing() {
        assert.fail('not resumed by a dummy');
      },
      stopProducing() {},
    };
    r.registerProducer(push, true);
    assert.equal(r.producer, push);
    assert.equal(r.streaming, true);
    assert.throws(() => r.registerProducer(push, true), ProducerAlreadyRegistered);
    r.unregisterProducer();
    assert.equal(r.producer, null);
  });

  test('a pull producer is resumed on registration and after each write', () => {
    const r = new DummyRequest();
    const pieces = ['one', 'two', 'three'];
    let resumes = 0;
    const pull: IPullProducer = {
      resumeProducing() {
        resumes++;
        const next = pieces.shift();
        if (next === undefined) {
          r.unregisterProducer();
          r.finish();
        } else r.write(next);
      },
      stopProducing() {},
    };
    r.registerProducer(pull, false);
    assert.equal(r.writtenText(), 'onetwothree');
    assert.equal(resumes, 4);
    assert.equal(r.finished, true);
  });

  test('a pull producer that writes later is resumed after that write', async () => {
    const r = new DummyRequest();
    let resumes = 0;
    const pull: IPullProducer = {
      resumeProducing() {
        resumes++;
        if (resumes === 3) {
          r.unregisterProducer();
          r.finish();
          return;
        }
        setImmediate(() => r.write(String(resumes)));
      },
      stopProducing() {},
    };
    r.registerProducer(pull, false);
    assert.equal(resumes, 1);
    await r.notifyFinish();
    assert.equal(r.writtenText(), '12');
  });

  test('processingFailed records, sets 500 and fails notifyFinish', async () => {
    const r = new DummyRequest();
    const d = r.notifyFinish();
    r.processingFailed(new Error('oops'));
    assert.equal(r.code, 500);
    assert.equal(r.failures[0]!.value.message, 'oops');
    await assert.rejects(d.asPromise(), /oops/);
  });
});

describe('DummyRequest: the body', () => {
  test('a given body sets Content-Length and is read whole', async () => {
    const r = new DummyRequest({ method: 'POST', body: 'hello' });
    assert.equal(r.getHeader('content-length'), '5');
    const body = r.bodyStream();
    assert.equal(body.length, 5);
    assert.equal(body.complete, true);
    assert.equal(body.received, 5);
    assert.equal((await body.read()).toString(), 'hello');
    assert.equal((await body.read()).length, 0);
    assert.equal((await body.read()).length, 0);
  });

  test('read(maxBytes) cuts pieces; one pending read at a time', async () => {
    const r = new DummyRequest({ method: 'POST', bodyOpen: true });
    const body = r.bodyStream();
    assert.equal(body.length, null);
    const first = body.read(3);
    await assert.rejects(body.read(), InvalidArgumentError);
    r.requestBody.push(Buffer.from('abcdef'));
    assert.equal((await first).toString(), 'abc');
    assert.equal((await body.read(100)).toString(), 'def');
    const pending = body.read();
    r.requestBody.end();
    assert.equal((await pending).length, 0);
    await assert.rejects(body.read(0), InvalidArgumentError);
    assert.throws(() => body.deliverTo(recordingSink()), InvalidArgumentError);
  });

  test('async iteration yields the pieces in order', async () => {
    const r = new DummyRequest({ method: 'POST', bodyOpen: true });
    r.requestBody.push(Buffer.from('a'));
    r.requestBody.push(Buffer.from('b'));
    setImmediate(() => {
      r.requestBody.push(Buffer.from('c'));
      r.requestBody.end();
    });
    const got: string[] = [];
    for await (const piece of r.bodyStream()) got.push(piece.toString());
    // Pieces kept before the first read come joined.
    assert.deepEqual(got, ['ab', 'c']);
  });

  test('a pending read rejects when the body breaks off', async () => {
    const r = new DummyRequest({ method: 'POST', bodyOpen: true });
    const pending = r.bodyStream().read();
    r.requestBody.fail(new Failure(new ConnectionLost()));
    await assert.rejects(pending, ConnectionLost);
    await assert.rejects(r.bodyStream().read(), ConnectionLost);
  });

  test('deliverTo honours pause/resume, also re-entrantly, then ends', () => {
    const r = new DummyRequest({ method: 'POST', bodyOpen: true });
    const body = r.bodyStream();
    const sink = recordingSink((data) => {
      if (data.toString() === '2') body.pauseProducing();
    });
    r.requestBody.push(Buffer.from('1'));
    r.requestBody.push(Buffer.from('2'));
    r.requestBody.push(Buffer.from('3'));
    body.deliverTo(sink);
    assert.deepEqual(sink.events, ['data:1', 'data:2']);
    r.requestBody.end();
    assert.deepEqual(sink.events, ['data:1', 'data:2']);
    body.resumeProducing();
    assert.deepEqual(sink.events, ['data:1', 'data:2', 'data:3', 'end']);
    assert.throws(() => body.deliverTo(sink), InvalidArgumentError);
  });

  test('stopProducing drops the rest; reads then fail with BodyDiscardedError', async () => {
    const r = new DummyRequest({ method: 'POST', bodyOpen: true });
    r.requestBody.push(Buffer.from('abc'));
    const body = r.bodyStream();
    body.stopProducing();
    assert.equal(r.requestBody.buffered, 0);
    await assert.rejects(body.read(), BodyDiscardedError);
  });

  test('body() collects, caps with a 413 HTTPError, and reports failures', async () => {
    const ok = new DummyRequest({ method: 'POST', body: 'x'.repeat(100) });
    assert.equal((await ok.body()).length, 100);
    const announced = new DummyRequest({ method: 'POST', body: 'x'.repeat(100) });
    await assert.rejects(announced.body(10), (e: unknown) => {
      assert.ok(e instanceof HTTPError);
      assert.equal(e.status, 413);
      assert.equal(e.code, 'TORSION_ERR_HTTP_BODY_TOO_LARGE');
      return true;
    });
    const chunked = new DummyRequest({
      method: 'POST',
      headers: { 'Transfer-Encoding': 'chunked' },
      body: 'y'.repeat(100),
    });
    assert.equal(chunked.bodyStream().length, null);
    await assert.rejects(chunked.body(10), HTTPError);
    const broken = new DummyRequest({ method: 'POST', bodyOpen: true });
    broken.requestBody.push(Buffer.from('some'));
    const collecting = broken.body();
    broken.connectionLost();
    await assert.rejects(collecting, ConnectionLost);
  });
});

describe('render()', () => {
  test("bytes: Content-Length (replacing the resource's), written, finished", async () => {
    class R extends Resource {
      render_GET(request: IRequest): RenderResult {
        request.setHeader('Content-Length', '99');
        return Buffer.from('abc');
      }
    }
    const r = new DummyRequest();
    await render(new R(), r);
    assert.equal(r.writtenText(), 'abc');
    assert.equal(r.responseHeaders.get('content-length'), '3');
    assert.equal(r.finishCount, 1);
    const head = new DummyRequest({ method: 'HEAD' });
    await render(new R(), head);
    assert.equal(head.responseHeaders.get('content-length'), '3');
    assert.deepEqual(head.written, []);
  });

  test('a Deferred of bytes, and a Promise of NOT_DONE_YET', async () => {
    class R extends Resource {
      render_GET(): RenderResult {
        const d = new Deferred<string>();
        setImmediate(() => d.callback('deferred'));
        return d;
      }
      async render_POST(request: IRequest): Promise<typeof NOT_DONE_YET> {
        setImmediate(() => request.finish());
        return NOT_DONE_YET;
      }
    }
    const get = new DummyRequest();
    await render(new R(), get);
    assert.equal(get.writtenText(), 'deferred');
    const post = new DummyRequest({ method: 'POST' });
    await render(new R(), post);
    assert.equal(post.finished, true);
  });

  test('NOT_DONE_YET rejects if the connection is lost first', async () => {
    class R extends Resource {
      render_GET(): RenderResult {
        return NOT_DONE_YET;
      }
    }
    const r = new DummyRequest();
    const rendering = render(new R(), r);
    r.connectionLost();
    await assert.rejects(rendering, ConnectionLost);
  });

  test('a result of the wrong type is a processing failure', async () => {
    class R extends Resource {
      render_GET(): RenderResult {
        return 42 as unknown as string;
      }
    }
    const r = new DummyRequest();
    await assert.rejects(render(new R(), r), InvalidArgumentError);
    assert.equal(r.code, 500);
  });

  test('an echo through deliverTo with the body as the response producer', async () => {
    class Echo extends Resource {
      override render(request: IRequest): RenderResult {
        const body = request.bodyStream();
        request.registerProducer(body, true);
        body.deliverTo({
          dataReceived: (data) => request.write(data),
          bodyEnded: () => {
            request.unregisterProducer();
            request.finish();
          },
          bodyFailed: () => request.unregisterProducer(),
        });
        return NOT_DONE_YET;
      }
    }
    const r = new DummyRequest({ method: 'PUT', bodyOpen: true });
    const rendering = render(new Echo(), r);
    r.requestBody.push(Buffer.from('ping '));
    (r.producer as IPushProducer).pauseProducing();
    r.requestBody.push(Buffer.from('pong'));
    assert.equal(r.writtenText(), 'ping ');
    assert.equal(r.requestBody.buffered, 4);
    (r.producer as IPushProducer).resumeProducing();
    r.requestBody.end();
    await rendering;
    assert.equal(r.writtenText(), 'ping pong');
  });
});
