/**
 * The client's FIN over real sockets: by default it means the client has
 * gone away (as Twisted's channel and Node's HTTP server): responses
 * already finished are delivered, then the connection closes, and every
 * request whose response is not finished is lost at once (notifyFinish
 * fails, producers stop, bodies fail; an app's onClose runs, a fetch
 * handler's signal aborts), with no timer or socket left. With
 * `allowHalfOpen: true` the FIN is a half-close: what was received is
 * answered.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Clock } from '../src/reactor/clock.js';
import { ConnectionLost } from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IPushProducer, IReactorTime } from '../src/reactor/interfaces.js';
import { AppResource } from '../src/web/app.js';
import { FetchResource } from '../src/web/fetch.js';
import type { Request } from '../src/web/http/request.js';
import type { IRequest, RenderResult } from '../src/web/iweb.js';
import { NOT_DONE_YET, Resource } from '../src/web/resource.js';
import type { SiteOptions } from '../src/web/site.js';
import { type Served, serve, turns, until, watchFailures } from './app-helpers.js';
import { parseResponses, RawClient } from './http-wire.js';

const logged = watchFailures();

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: h\r\n\r\n`;

/** What a request's `notifyFinish()` came to. */
type Outcome = 'finished' | Failure;

/**
 * `/fast…` answers at once; `/never` and anything else is kept pending
 * (NOT_DONE_YET, nothing written); `/streaming` writes a first piece under
 * a push producer and never finishes; `/upload` reads its body.
 */
class Pending extends Resource {
  override isLeaf = true;
  readonly seen: string[] = [];
  readonly requests: Request[] = [];
  readonly outcomes = new Map<string, Outcome>();
  readonly stops: string[] = [];
  readonly bodyFailures: unknown[] = [];

  override render(request: IRequest): RenderResult {
    const r = request as Request;
    const path = r.path;
    this.seen.push(path);
    this.requests.push(r);
    r.notifyFinish().addCallbacks(
      () => {
        this.outcomes.set(path, 'finished');
        return null;
      },
      (failure) => {
        this.outcomes.set(path, failure);
        return null;
      },
    );
    if (path.startsWith('/fast')) return `fast ${path}`;
    if (path === '/streaming') {
      const producer: IPushProducer = {
        pauseProducing() {},
        resumeProducing() {},
        stopProducing: () => {
          this.stops.push(path);
        },
      };
      r.registerProducer(producer, true);
      r.write('first piece');
      return NOT_DONE_YET;
    }
    if (path === '/upload') {
      r.body().then(
        () => this.bodyFailures.push('complete'),
        (e: unknown) => this.bodyFailures.push(e),
      );
      return NOT_DONE_YET;
    }
    return NOT_DONE_YET;
  }
}

async function servePending(options: SiteOptions = {}) {
  const clock = new Clock();
  const root = new Pending();
  const server = await serve(root, { reactor: clock as IReactorTime, ...options });
  return { clock, root, server };
}

/**
 * Stops `server`, whose site runs on `clock`: the shutdown's grace period
 * (0) is a delayed call on that clock, so it is moved on (what a failed
 * test left open is aborted, and the test does not hang). The shutdown
 * starts before the port stops, whose own would wait the default 10 s.
 */
async function closeOnClock(server: Served, clock: Clock): Promise<void> {
  const done = server.site.shutdown(0);
  clock.advance(0);
  await server.port.stopListening();
  await done;
}

function lostWith(outcome: Outcome | undefined): boolean {
  return outcome !== undefined && outcome !== 'finished' && outcome.value instanceof ConnectionLost;
}

describe('HTTP server: the client FIN (default: the client has gone away)', () => {
  test('a resource that never finishes: notifyFinish fails with ConnectionLost, the socket closes, no timer left', async () => {
    const { clock, root, server } = await servePending();
    try {
      const client = new RawClient(server.portNumber);
      client.write(GET('/never'));
      await until(() => root.seen.length === 1, 'rendered');
      await turns(3);
      assert.equal(root.outcomes.size, 0, 'still pending before the FIN');
      client.socket.end();
      await until(() => root.outcomes.has('/never'), 'notifyFinish fired');
      assert.equal(lostWith(root.outcomes.get('/never')), true, 'ConnectionLost');
      assert.equal(root.requests[0]!.lost, true);
      await until(() => client.closed, 'the socket closed');
      await until(() => server.site.channels.size === 0, 'the channel closed');
      assert.equal(client.received, 0, 'nothing was answered');
      assert.equal(clock.getDelayedCalls().length, 0, 'no timer left');
      // Writes after the loss do nothing.
      root.requests[0]!.write('late');
      root.requests[0]!.finish();
    } finally {
      await closeOnClock(server, clock);
    }
    assert.equal(logged.length, 0, 'a client leaving is not an error');
  });

  test('pipelined requests: the finished responses are delivered, the others are lost', async () => {
    const { clock, root, server } = await servePending();
    try {
      const client = new RawClient(server.portNumber);
      client.write(`${GET('/fast1')}${GET('/fast2')}${GET('/never')}${GET('/queued')}`);
      await until(() => root.seen.length === 3, 'the third is dispatched');
      client.socket.end();
      await until(() => client.closed, 'the socket closed');
      const { responses, rest } = parseResponses(client.data(), ['GET', 'GET']);
      assert.equal(rest, 0, 'nothing after the finished responses');
      assert.deepEqual(
        responses.map((r) => r.body.toString()),
        ['fast /fast1', 'fast /fast2'],
      );
      assert.equal(root.outcomes.get('/fast1'), 'finished');
      assert.equal(root.outcomes.get('/fast2'), 'finished');
      assert.equal(lostWith(root.outcomes.get('/never')), true, '/never lost');
      assert.deepEqual(root.seen, ['/fast1', '/fast2', '/never'], 'the queued one never rendered');
      await until(() => server.site.channels.size === 0, 'the channel closed');
      assert.equal(clock.getDelayedCalls().length, 0, 'no timer left');
    } finally {
      await closeOnClock(server, clock);
    }
  });

  test('a response in progress: its producer is stopped, what was written arrives, then the close', async () => {
    const { clock, root, server } = await servePending();
    try {
      const client = new RawClient(server.portNumber);
      client.write(GET('/streaming'));
      await until(() => client.data().includes('first piece'), 'the first piece arrived');
      client.socket.end();
      await until(() => root.outcomes.has('/streaming'), 'notifyFinish fired');
      assert.equal(lostWith(root.outcomes.get('/streaming')), true, 'ConnectionLost');
      assert.deepEqual(root.stops, ['/streaming'], 'stopProducing once');
      await until(() => client.closed, 'the socket closed');
      // Chunked and never ended: the client sees it cut short.
      assert.doesNotMatch(client.data().toString('latin1'), /\r\n0\r\n\r\n$/);
      await until(() => server.site.channels.size === 0, 'the channel closed');
    } finally {
      await closeOnClock(server, clock);
    }
  });

  test('a body cut short by the FIN fails with ConnectionLost', async () => {
    const { clock, root, server } = await servePending();
    try {
      const client = new RawClient(server.portNumber);
      client.write('POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc');
      await until(() => root.seen.length === 1, 'rendered');
      client.socket.end();
      await until(() => root.bodyFailures.length === 1, 'the body settled');
      assert.equal(root.bodyFailures[0] instanceof ConnectionLost, true, 'ConnectionLost');
      assert.equal(lostWith(root.outcomes.get('/upload')), true);
      await until(() => client.closed, 'the socket closed');
      await until(() => server.site.channels.size === 0, 'the channel closed');
    } finally {
      await closeOnClock(server, clock);
    }
  });

  test('an app waiting on nothing: onClose runs once, no timer left', async () => {
    const clock = new Clock();
    let closes = 0;
    let called = false;
    const root = new Resource();
    root.putChild(
      'app',
      new AppResource(
        (environ, startResponse) => {
          called = true;
          const body = environ['torsion.async'];
          body.onClose(() => {
            closes++;
          });
          startResponse('200 OK', [['Content-Type', 'text/plain']]);
          return body; // a long poll: nothing is put
        },
        { reactor: clock as IReactorTime },
      ),
    );
    const server = await serve(root, { reactor: clock as IReactorTime });
    try {
      const client = new RawClient(server.portNumber);
      client.write(GET('/app/poll'));
      await until(() => called, 'the app ran');
      await turns(5);
      assert.equal(closes, 0, 'still open before the FIN');
      client.socket.end();
      await until(() => closes > 0, 'onClose ran');
      await until(() => client.closed, 'the socket closed');
      await until(() => server.site.channels.size === 0, 'the channel closed');
      await turns(5);
      assert.equal(closes, 1, 'onClose once');
      assert.equal(clock.getDelayedCalls().length, 0, 'no timer left');
    } finally {
      await closeOnClock(server, clock);
    }
    assert.equal(logged.length, 0, `nothing logged: ${logged.map((e) => e.message).join('; ')}`);
  });

  test("a fetch handler awaiting: its request's signal aborts with ConnectionLost", async () => {
    const clock = new Clock();
    let started = false;
    const aborts: unknown[] = [];
    const server = await serve(
      new FetchResource(async (req) => {
        started = true;
        await new Promise<void>((resolve) =>
          req.signal.addEventListener('abort', () => {
            aborts.push(req.signal.reason);
            resolve();
          }),
        );
        return new Response('too late');
      }),
      { reactor: clock as IReactorTime },
    );
    try {
      const client = new RawClient(server.portNumber);
      client.write(GET('/wait'));
      await until(() => started, 'the handler ran');
      await turns(3);
      assert.equal(aborts.length, 0, 'not aborted before the FIN');
      client.socket.end();
      await until(() => aborts.length > 0, 'the signal aborted');
      assert.equal(aborts.length, 1, 'aborted once');
      const reason = aborts[0];
      assert.equal(reason instanceof ConnectionLost, true, `aborted with ${String(reason)}`);
      await until(() => client.closed, 'the socket closed');
      assert.equal(client.received, 0, 'the late response is not sent');
      await until(() => server.site.channels.size === 0, 'the channel closed');
    } finally {
      await closeOnClock(server, clock);
    }
    assert.equal(logged.length, 0, `nothing logged: ${logged.map((e) => e.message).join('; ')}`);
  });
});

describe('HTTP server: the client FIN with allowHalfOpen: true (a half-close)', () => {
  test('a pending response is still answered after the FIN, then the connection closes', async () => {
    const { clock, root, server } = await servePending({ allowHalfOpen: true });
    try {
      const client = new RawClient(server.portNumber);
      client.write(`${GET('/fast1')}${GET('/never')}${GET('/fast2')}`);
      await until(() => root.seen.length === 2, 'the second is dispatched');
      let sawFin = false;
      const channel = root.requests[1]!.channel;
      const readConnectionLost = channel.readConnectionLost.bind(channel);
      channel.readConnectionLost = () => {
        readConnectionLost();
        sawFin = true;
      };
      client.socket.end();
      await until(() => sawFin, 'the server saw the FIN');
      await turns(3);
      assert.equal(root.outcomes.has('/never'), false, 'not lost');
      assert.equal(client.closed, false, 'still open');
      root.requests[1]!.respond('answered after the FIN');
      await until(() => client.closed, 'the socket closed');
      const { responses, rest } = parseResponses(client.data(), ['GET', 'GET', 'GET']);
      assert.equal(rest, 0);
      assert.deepEqual(
        responses.map((r) => r.body.toString()),
        ['fast /fast1', 'answered after the FIN', 'fast /fast2'],
      );
      assert.equal(root.outcomes.get('/never'), 'finished');
      await until(() => server.site.channels.size === 0, 'the channel closed');
      assert.equal(clock.getDelayedCalls().length, 0, 'no timer left');
    } finally {
      await closeOnClock(server, clock);
    }
  });

  test('a body cut short by the FIN still fails and closes the connection', async () => {
    const { clock, root, server } = await servePending({ allowHalfOpen: true });
    try {
      const client = new RawClient(server.portNumber);
      client.write('POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc');
      await until(() => root.seen.length === 1, 'rendered');
      client.socket.end();
      await until(() => root.bodyFailures.length === 1, 'the body settled');
      assert.equal(root.bodyFailures[0] instanceof ConnectionLost, true, 'ConnectionLost');
      await until(() => client.closed, 'the socket closed');
      await until(() => server.site.channels.size === 0, 'the channel closed');
    } finally {
      await closeOnClock(server, clock);
    }
  });
});
