/**
 * An ordinary Hono app, hosted by torsion (`FetchResource`): nothing in it
 * knows about torsion.
 *
 *     npx tsx examples/hono.ts [--port 8080] [--interface 127.0.0.1]
 *     npx torsion web --listen tcp:8080:interface=127.0.0.1 --fetch examples/hono.ts
 *
 * - `GET /` → `Hello from Hono on torsion!`;
 * - `GET /users/:id` → JSON `{ id, tags }` (`?tag=` may repeat);
 *   `GET /posts/:post/comments/:comment` → JSON of both params;
 * - `POST /echo` with a JSON body → 201 and `{ received: body }`
 *   (malformed JSON: 400);
 * - `POST /upload` → the byte count and SHA-256 of the body, read as a
 *   stream (torsion reads the socket only as fast as this consumes it);
 * - `GET /stream` → five lines written with `hono/streaming`'s `stream`,
 *   10 ms apart; `GET /sse` → server-sent events (`streamSSE`), `?count=N`
 *   of them (default 3), 10 ms apart, stopping if the client goes away;
 * - `GET /cookies` → two `Set-Cookie` headers;
 * - `GET /error` → throws: Hono's error handler answers 500;
 * - anything else → Hono's 404.
 *
 * Run directly it listens on 127.0.0.1:8080 (`--port 0` picks a free port),
 * prints `listening on http://HOST:PORT/` and stops on Ctrl-C or SIGTERM.
 * The default export is the Hono app (for `torsion web --fetch`).
 */

import { createHash } from 'node:crypto';
import { Hono } from 'hono';
import { setCookie } from 'hono/cookie';
import { HTTPException } from 'hono/http-exception';
import { stream, streamSSE } from 'hono/streaming';
import { FetchResource } from '../src/web/fetch.js';
import { isMain, serveExample } from './serve.js';

const app = new Hono();

app.get('/', (c) => c.text('Hello from Hono on torsion!'));

app.get('/users/:id', (c) => c.json({ id: c.req.param('id'), tags: c.req.queries('tag') ?? [] }));

app.get('/posts/:post/comments/:comment', (c) => c.json(c.req.param()));

app.post('/echo', async (c) => {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new HTTPException(400, { message: 'the body is not valid JSON' });
  }
  return c.json({ received: body }, 201);
});

app.post('/upload', async (c) => {
  const hash = createHash('sha256');
  let bytes = 0;
  const body = c.req.raw.body;
  if (body !== null) {
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.length;
      hash.update(value);
    }
  }
  return c.json({ bytes, sha256: hash.digest('hex') });
});

app.get('/stream', (c) =>
  stream(c, async (s) => {
    for (let i = 1; i <= 5; i++) {
      await s.write(`line ${i}\n`);
      await s.sleep(10);
    }
  }),
);

app.get('/sse', (c) => {
  const count = Number(c.req.query('count') ?? '3');
  return streamSSE(c, async (s) => {
    for (let id = 1; id <= count && !s.aborted; id++) {
      await s.writeSSE({ id: String(id), event: 'tick', data: JSON.stringify({ n: id }) });
      await s.sleep(10);
    }
  });
});

app.get('/cookies', (c) => {
  setCookie(c, 'flavour', 'oatmeal', { path: '/' });
  setCookie(c, 'session', 'abc123', { httpOnly: true, sameSite: 'Lax' });
  return c.text('two cookies');
});

app.get('/error', () => {
  throw new Error('this route throws');
});

export default app;

// Run directly: the app, unchanged, as the root of a torsion site.
if (isMain(import.meta.url)) process.exitCode = await serveExample(new FetchResource(app));
