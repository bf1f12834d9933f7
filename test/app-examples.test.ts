/**
 * The app gateway examples over real sockets: examples/async-upload.ts
 * (counts and hashes an upload read only with `onGet`, paced on a `Clock`,
 * with the upload paused upstream meanwhile), examples/async-stream.ts
 * (server-sent events from a push producer, paused by a client that does
 * not read, stopped when it goes away), examples/middleware.ts (the
 * back-off, polls counted on a `Clock`); each also run on its own
 * (`npx tsx examples/X.ts --port 0`).
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import asyncStreamApp, { createStreamApp, type EventProducer } from '../examples/async-stream.js';
import asyncUploadApp, { createUploadApp } from '../examples/async-upload.js';
import middlewareApp, { createMiddlewareDemo } from '../examples/middleware.js';
import { Clock } from '../src/reactor/clock.js';
import type { IReactorTime } from '../src/reactor/interfaces.js';
import type { App } from '../src/web/app.js';
import type { IRequestBody } from '../src/web/iweb.js';
import {
  chunked,
  header,
  LogCapture,
  RawClient,
  requestHead,
  serveApp,
  sha256,
  turns,
  until,
} from './app-helpers.js';
import { runExample } from './cli-helpers.js';

/** Wraps `app` to keep its request body object (to watch what the server holds). */
function watching(app: App, seen: { body: IRequestBody | null }): App {
  return (environ, startResponse) => {
    seen.body = environ['torsion.request'].bodyStream();
    return app(environ, startResponse);
  };
}

// ---------------------------------------------------------------------- async-upload

describe('examples/async-upload.ts', () => {
  test('a chunked upload, unpaced: byte count and SHA-256', async () => {
    const server = await serveApp(asyncUploadApp);
    try {
      const data = randomBytes(300_000);
      const client = new RawClient(server.portNumber);
      client.write(requestHead('POST', '/app?rate=0', 'Transfer-Encoding: chunked\r\n'));
      client.write(chunked([data.subarray(0, 1000), data.subarray(1000)]));
      const [r] = await client.responses(['POST']);
      assert.equal(r!.status, 200);
      const text = r!.body.toString();
      assert.match(text, new RegExp(`^bytes: ${data.length}\nsha256: ${sha256(data)}\nseconds: `));
      const usage = new RawClient(server.portNumber);
      usage.write(requestHead('GET', '/app'));
      const [u] = await usage.responses(['GET']);
      assert.match(u!.body.toString(), /onGet/);
      const bad = new RawClient(server.portNumber);
      bad.write(requestHead('POST', '/app?rate=fast', 'Content-Length: 0\r\n'));
      const [b] = await bad.responses(['POST']);
      assert.equal(b!.status, 400);
      for (const c of [client, usage, bad]) await c.close();
    } finally {
      await server.close();
    }
  });

  test('paced on a Clock: the server holds at most ~64 KiB while the app waits', async () => {
    const clock = new Clock();
    const seen: { body: IRequestBody | null } = { body: null };
    const rate = 256 * 1024;
    const server = await serveApp(
      watching(createUploadApp({ clock: clock as IReactorTime, rate }), seen),
    );
    try {
      const data = randomBytes(4 * 1024 * 1024);
      const client = new RawClient(server.portNumber);
      client.write(requestHead('POST', '/app', `Content-Length: ${data.length}\r\n`));
      client.write(data);
      let maxHeld = 0;
      for (let step = 0; step < 200 && client.received === 0; step++) {
        await until(() => seen.body !== null, 'the app ran');
        // Let the socket bring whatever the server will take.
        for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 2));
        const body = seen.body!;
        maxHeld = Math.max(maxHeld, body.received - taken(body));
        clock.advance(0.25); // 64 KiB more are due
      }
      const [r] = await client.responses(['POST']);
      assert.match(
        r!.body.toString(),
        new RegExp(`^bytes: ${data.length}\nsha256: ${sha256(data)}\n`),
      );
      // The app keeps to 256 KiB per (clock) second: 4 MiB took 16 s.
      const seconds = Number(/seconds: ([\d.]+)/.exec(r!.body.toString())![1]);
      assert.equal(seconds >= 15.75, true, `took ${seconds} s`);
      assert.equal(maxHeld <= 64 * 1024 + 64 * 1024 + 64 * 1024, true, `held ${maxHeld} bytes`);
      assert.equal(clock.getDelayedCalls().length, 0);
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('runs on its own: npx tsx examples/async-upload.ts --port 0', async () => {
    const server = await runExample('async-upload.ts');
    const client = new RawClient(server.port);
    client.write(`${requestHead('PUT', '/?rate=0', 'Content-Length: 5\r\n')}hello`);
    const [r] = await client.responses(['PUT']);
    assert.match(
      r!.body.toString(),
      new RegExp(`^bytes: 5\nsha256: ${sha256(Buffer.from('hello'))}`),
    );
    await client.close();
    assert.equal(await server.stop(), 0);
  });
});

/** Bytes of `body` handed to its reader (received minus what it still keeps). */
function taken(body: IRequestBody): number {
  return body.received - (body as IRequestBody & { buffered: number }).buffered;
}

// ---------------------------------------------------------------------- async-stream

/** The events in a text/event-stream (raw or de-chunked: each event is one chunk). */
function events(text: string): { id: string; event: string; data: { n: number; time: number } }[] {
  return [...text.matchAll(/id: (\d+)\nevent: (\w+)\ndata: (\{.*\})\n\n/g)].map((m) => ({
    id: m[1]!,
    event: m[2]!,
    data: JSON.parse(m[3]!) as { n: number; time: number },
  }));
}

describe('examples/async-stream.ts', () => {
  test('events one interval apart on a Clock, then the end of the stream', async () => {
    const clock = new Clock();
    const server = await serveApp(createStreamApp({ clock: clock as IReactorTime }));
    try {
      const client = new RawClient(server.portNumber);
      client.write(requestHead('GET', '/app?count=3&interval=500'));
      await client.until(() => client.data().includes('stream open'));
      const head = client.data().toString();
      assert.match(head, /content-type: text\/event-stream/i);
      assert.equal(events(client.data().toString()).length, 0);
      clock.advance(0.5);
      await client.until(() => events(client.data().toString()).length === 1);
      clock.advance(0.5);
      clock.advance(0.5);
      const [r] = await client.responses(['GET']);
      const got = events(r!.body.toString());
      assert.deepEqual(
        got.map((e) => [e.id, e.event, e.data.n, e.data.time]),
        [
          ['1', 'tick', 1, 0.5],
          ['2', 'tick', 2, 1],
          ['3', 'tick', 3, 1.5],
        ],
      );
      assert.equal(header(r!, 'cache-control'), 'no-store');
      assert.equal(clock.getDelayedCalls().length, 0);
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('a client that does not read pauses the producer; one that goes away stops it', async () => {
    const clock = new Clock();
    let producer: EventProducer | null = null;
    const app = createStreamApp({ clock: clock as IReactorTime });
    const server = await serveApp((environ, startResponse) => {
      // Keeps the producer the example registers.
      const body = environ['torsion.async'];
      const register = body.registerProducer.bind(body);
      body.registerProducer = (p, streaming) => {
        producer = p as EventProducer;
        register(p, streaming);
      };
      return app(environ, startResponse);
    });
    try {
      const client = new RawClient(server.portNumber);
      client.socket.pause();
      client.write(requestHead('GET', '/app?count=0&interval=0&size=16384'));
      await until(() => producer !== null, 'the app ran');
      for (let i = 0; i < 400 && producer!.pauses === 0; i++) {
        clock.advance(0);
        await turns(2);
      }
      assert.equal(producer!.pauses > 0, true, 'paused by the slow client');
      const sent = producer!.sent;
      for (let i = 0; i < 50; i++) {
        clock.advance(0);
        await turns(2);
      }
      assert.equal(producer!.sent, sent, 'nothing produced while paused');
      assert.equal(sent < 1024, true, `${sent} events of 16 KiB for a stalled client`);
      assert.equal(clock.getDelayedCalls().length, 0, 'its timer stopped while paused');
      client.socket.resetAndDestroy();
      await until(() => server.site.channels.size === 0, 'the connection closed');
      for (let i = 0; i < 10; i++) clock.advance(0);
      assert.equal(producer!.sent, sent, 'stopped');
      assert.equal(clock.getDelayedCalls().length, 0);
    } finally {
      await server.close();
    }
  });

  test('runs on its own: npx tsx examples/async-stream.ts --port 0', async () => {
    const server = await runExample('async-stream.ts');
    const client = new RawClient(server.port);
    client.write(requestHead('GET', '/?count=3&interval=10'));
    const [r] = await client.responses(['GET']);
    assert.deepEqual(
      events(r!.body.toString()).map((e) => e.data.n),
      [1, 2, 3],
    );
    await client.close();
    assert.equal(await server.stop(), 0);
  });
});

// ---------------------------------------------------------------------- middleware

describe('examples/middleware.ts', () => {
  test('the wrapped body is iterated with back-off: polls counted on a Clock', async () => {
    const clock = new Clock();
    const server = await serveApp(createMiddlewareDemo({ clock: clock as IReactorTime }), {
      reactor: clock as IReactorTime,
    });
    try {
      const client = new RawClient(server.portNumber);
      client.write(requestHead('GET', '/app?lines=3&interval=250'));
      await client.until(() => client.data().includes('line 1 of 3'));
      for (let ms = 0; ms < 600; ms++) clock.advance(0.001);
      const [r] = await client.responses(['GET']);
      const lines = r!.body.toString().split('\n');
      assert.deepEqual(lines.slice(0, 3), [
        '[chunk 1 at 0 ms, poll 1] line 1 of 3',
        // Between two lines: polls at 1, 3, 7, 15, 31, 63, 127 and 227 ms, then the put woke it.
        '[chunk 2 at 250 ms, poll 11] line 2 of 3',
        '[chunk 3 at 500 ms, poll 21] line 3 of 3',
      ]);
      assert.match(lines[3]!, /^middleware: 3 chunks, 23 polls in 500 ms: the server backed off/);
      assert.equal(clock.getDelayedCalls().length, 0);
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('served as the default export over real time; and on its own', async () => {
    const log = new LogCapture();
    const server = await serveApp(middlewareApp);
    try {
      const client = new RawClient(server.portNumber);
      client.write(requestHead('GET', '/app?lines=2&interval=30'));
      const [r] = await client.responses(['GET']);
      const text = r!.body.toString();
      assert.match(text, /^\[chunk 1 at \d+ ms, poll 1\] line 1 of 2\n/);
      assert.match(text, /\[chunk 2 at \d+ ms, poll \d+\] line 2 of 2\n/);
      const polls = Number(/(\d+) polls/.exec(text)![1]);
      // 30 ms of back-off is at most 1+2+4+8+16 ms: about 6 polls, never hundreds.
      assert.equal(polls >= 3 && polls <= 20, true, `${polls} polls`);
      await client.close();
      const bad = new RawClient(server.portNumber);
      bad.write(requestHead('GET', '/app?lines=0'));
      const [b] = await bad.responses(['GET']);
      assert.equal(b!.status, 400);
      await bad.close();
    } finally {
      log.stop();
      await server.close();
    }
    const alone = await runExample('middleware.ts');
    const client = new RawClient(alone.port);
    client.write(requestHead('GET', '/?lines=2&interval=5'));
    const [r] = await client.responses(['GET']);
    assert.match(r!.body.toString(), /line 2 of 2\n/);
    await client.close();
    assert.equal(await alone.stop(), 0);
  });

  test('the default exports are apps', () => {
    for (const app of [asyncUploadApp, asyncStreamApp, middlewareApp]) {
      assert.equal(typeof app, 'function');
      assert.equal(app.length, 2, 'called as (environ, startResponse)');
    }
  });
});
