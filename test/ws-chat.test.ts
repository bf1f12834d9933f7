/**
 * examples/ws-chat.ts over real sockets, with `ws`'s client: the page's
 * files, join and nick rules, broadcast, the history a newcomer gets, leave
 * notices, refused frames and oversize ones, and the slow-client policy (a
 * client that stops reading is dropped with 1008 while another keeps
 * receiving every message). Then the script run on its own and through
 * `torsion web --resource`.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import {
  HISTORY_SIZE,
  MAX_NICK_LENGTH,
  MAX_TEXT_LENGTH,
  type ServerMessage,
} from '../examples/ws-chat/room.js';
import { type Chat, createChat, MAX_PAYLOAD } from '../examples/ws-chat.js';
import type { IPv4Address } from '../src/reactor/address.js';
import type { IListeningPort } from '../src/reactor/interfaces.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { Site } from '../src/web/site.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const execFileAsync = promisify(execFile);

/** Rejects with `what` if `promise` has not settled within `seconds` (so a failure never hangs). */
async function within<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${seconds} s: ${what}`)),
      seconds * 1000,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

type Predicate = (frame: ServerMessage) => boolean;

/** A `ws` client that keeps every frame, parsed, and waits for the ones a test expects. */
class ChatClient {
  readonly frames: ServerMessage[] = [];
  /** Resolves with the close code and reason once the connection is closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  #cursor = 0;
  #waiter: { test: Predicate; resolve: (frame: ServerMessage) => void } | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      assert.equal(isBinary, false, 'the server sends text frames only');
      this.#frame(JSON.parse(String(data)) as ServerMessage);
    });
    ws.on('error', () => {});
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }

  static async open(port: number, nick?: string): Promise<ChatClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    clients.add(ws);
    await within(once(ws, 'open'), 10, 'the WebSocket handshake');
    const client = new ChatClient(ws);
    if (nick !== undefined) {
      client.send({ type: 'join', nick });
      await client.next((f) => f.type === 'welcome' || f.type === 'error');
      assert.equal(client.frames.at(-1)?.type, 'welcome', `join as ${nick}`);
    }
    return client;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The first frame after the previous match that passes `test`. */
  next(test: Predicate, seconds = 10): Promise<ServerMessage> {
    for (let i = this.#cursor; i < this.frames.length; i++) {
      if (test(this.frames[i]!)) {
        this.#cursor = i + 1;
        return Promise.resolve(this.frames[i]!);
      }
    }
    this.#cursor = this.frames.length;
    const found = new Promise<ServerMessage>((resolve) => {
      this.#waiter = { test, resolve };
    });
    return within(found, seconds, 'an expected frame');
  }

  /** The next `error` frame's code. */
  async error(): Promise<string> {
    const frame = await this.next((f) => f.type === 'error');
    return frame.type === 'error' ? frame.code : '';
  }

  /** Frames of one type received so far. */
  of<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }>[] {
    return this.frames.filter((f) => f.type === type) as Extract<ServerMessage, { type: T }>[];
  }

  async close(): Promise<void> {
    this.ws.close(1000);
    await within(this.closed, 10, 'the closing handshake');
  }

  #frame(frame: ServerMessage): void {
    this.frames.push(frame);
    const waiter = this.#waiter;
    if (waiter?.test(frame)) {
      this.#waiter = null;
      this.#cursor = this.frames.length;
      waiter.resolve(frame);
    }
  }
}

/** Everything the server logs (the drop of a slow client; no error ever). */
const logged: LogEvent[] = [];
const removeObserver = addObserver((event) => logged.push(event));

const clients = new Set<WebSocket>();
const ports = new Set<IListeningPort>();
const children = new Set<ChildProcess>();
after(async () => {
  removeObserver();
  for (const ws of clients) ws.terminate();
  for (const port of ports) await port.stopListening();
  for (const child of children) child.kill('SIGKILL');
});

/** A chat on a fresh port; its room is `chat.factory.room`. */
async function serve(
  options: Parameters<typeof createChat>[0] = {},
): Promise<Chat & { port: number }> {
  const chat = createChat(options);
  const port = listenTCP(reactor, 0, new Site(chat.root), { interface: '127.0.0.1' });
  ports.add(port);
  await port.whenListening();
  return { ...chat, port: (port.getHost() as IPv4Address).port };
}

/** One GET with `node:http`, no keep-alive agent (nothing stays open). */
function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => {
          body += s;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body }),
        );
        res.on('error', reject);
      });
      req.on('error', reject);
    }),
    10,
    `GET ${path}`,
  );
}

describe('examples/ws-chat.ts', () => {
  test('serves the page, its script and style; not the room module', async () => {
    const { port } = await serve();
    const page = await get(port, '/');
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/html/);
    assert.match(page.body, /<script type="module" src="chat\.js"><\/script>/);
    const script = await get(port, '/chat.js');
    assert.equal(script.status, 200);
    assert.match(script.type, /javascript/);
    assert.match(script.body, /textContent/);
    assert.doesNotMatch(script.body, /innerHTML/, 'user data never goes through innerHTML');
    const style = await get(port, '/style.css');
    assert.equal(style.status, 200);
    assert.match(style.type, /^text\/css/);
    assert.equal((await get(port, '/room.ts')).status, 404);
    assert.equal((await get(port, '/ws-chat/room.ts')).status, 404);
  });

  test('nick rules: empty, overlong, invalid, taken (any case); then a good one', async () => {
    const { port, factory } = await serve();
    const ann = await ChatClient.open(port, 'ann');
    const bob = await ChatClient.open(port);
    for (const [nick, code] of [
      ['', 'nick-empty'],
      ['   ', 'nick-empty'],
      ['n'.repeat(MAX_NICK_LENGTH + 1), 'nick-too-long'],
      ['<img src=x>', 'nick-invalid'],
      ['two words', 'nick-invalid'],
      ['ann', 'nick-taken'],
      ['ANN', 'nick-taken'],
    ] as const) {
      bob.send({ type: 'join', nick });
      assert.equal(await bob.error(), code, `join as ${JSON.stringify(nick)}`);
    }
    const refused = bob.of('error');
    assert.equal(
      refused.every((f) => f.message.length > 0),
      true,
      'every error frame says what is wrong',
    );
    assert.deepEqual(factory.room.nicks, ['ann'], 'refused joins change nothing');
    bob.send({ type: 'join', nick: ' bob ' });
    const welcome = await bob.next((f) => f.type === 'welcome');
    assert.deepEqual(welcome, {
      type: 'welcome',
      nick: 'bob',
      members: ['ann', 'bob'],
      history: [],
    });
    bob.send({ type: 'join', nick: 'bob2' });
    assert.equal(await bob.error(), 'already-joined');
    const joined = await ann.next((f) => f.type === 'joined');
    assert.equal(joined.type === 'joined' && joined.nick, 'bob');
    assert.equal(ann.of('joined').length, 1, 'ann heard of bob once, and of no refused join');
    await ann.close();
    await bob.close();
  });

  test('refused frames: bad JSON, unknown type, binary, say before join, empty or long text', async () => {
    const { port } = await serve();
    const client = await ChatClient.open(port);
    client.send('{not json');
    assert.equal(await client.error(), 'bad-message');
    client.send({ type: 'shout', text: 'hi' });
    assert.equal(await client.error(), 'bad-message');
    client.send({ type: 'say', text: 42 });
    assert.equal(await client.error(), 'bad-message');
    client.ws.send(Buffer.from('{"type":"say","text":"hi"}'), { binary: true });
    assert.equal(await client.error(), 'binary-unsupported');
    client.send({ type: 'say', text: 'hi' });
    assert.equal(await client.error(), 'not-joined');
    client.send({ type: 'join', nick: 'ann' });
    await client.next((f) => f.type === 'welcome');
    client.send({ type: 'say', text: ' \n ' });
    assert.equal(await client.error(), 'text-empty');
    client.send({ type: 'say', text: 'y'.repeat(MAX_TEXT_LENGTH + 1) });
    assert.equal(await client.error(), 'text-too-long');
    client.send({ type: 'say', text: 'y'.repeat(MAX_TEXT_LENGTH) });
    const longest = await client.next((f) => f.type === 'message');
    assert.equal(longest.type === 'message' && longest.text.length, MAX_TEXT_LENGTH);
    assert.equal(client.ws.readyState, WebSocket.OPEN, 'refused frames leave the connection open');
    await client.close();
  });

  test('a frame over maxPayload closes the connection with 1009', async () => {
    const { port, factory } = await serve();
    const client = await ChatClient.open(port, 'big');
    client.send({ type: 'say', text: 'z'.repeat(MAX_PAYLOAD) });
    const { code } = await within(client.closed, 10, 'the close after an oversize frame');
    assert.equal(code, 1009);
    // The server's connectionLost may come a turn after the client's close.
    for (let i = 0; i < 1000 && factory.room.nicks.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(factory.room.nicks, [], 'the client left the room');
  });

  test('broadcast: every member gets each message, the author too, in order', async () => {
    const { port } = await serve();
    const ann = await ChatClient.open(port, 'ann');
    const bob = await ChatClient.open(port, 'bob');
    const cat = await ChatClient.open(port, 'cat');
    ann.send({ type: 'say', text: 'hello <b>all</b> & "you"' });
    bob.send({ type: 'say', text: 'line one\nline two' });
    for (const client of [ann, bob, cat]) {
      await client.next((f) => f.type === 'message' && f.nick === 'bob');
      const messages = client.of('message');
      assert.deepEqual(
        messages.map((m) => [m.id, m.nick, m.text]),
        [
          [1, 'ann', 'hello <b>all</b> & "you"'],
          [2, 'bob', 'line one\nline two'],
        ],
      );
      assert.equal(
        messages.every((m) => Number.isFinite(m.time)),
        true,
        'messages carry a time',
      );
    }
    assert.deepEqual(
      ann.of('joined').map((f) => f.nick),
      ['bob', 'cat'],
    );
    assert.deepEqual(
      bob.of('joined').map((f) => f.nick),
      ['cat'],
    );
    assert.equal(cat.of('joined').length, 0);
    for (const client of [ann, bob, cat]) await client.close();
  });

  test('a newcomer gets the last 50 messages, oldest first', async () => {
    const { port } = await serve();
    const ann = await ChatClient.open(port, 'ann');
    const total = HISTORY_SIZE + 25;
    for (let i = 1; i <= total; i++) ann.send({ type: 'say', text: `message ${i}` });
    await ann.next((f) => f.type === 'message' && f.text === `message ${total}`);
    const late = await ChatClient.open(port, 'late');
    const welcome = late.of('welcome')[0]!;
    assert.deepEqual(welcome.members, ['ann', 'late']);
    assert.deepEqual(
      welcome.history.map((m) => m.text),
      Array.from({ length: HISTORY_SIZE }, (_, i) => `message ${total - HISTORY_SIZE + 1 + i}`),
    );
    assert.deepEqual(
      welcome.history.map((m) => m.id),
      Array.from({ length: HISTORY_SIZE }, (_, i) => total - HISTORY_SIZE + 1 + i),
    );
    await ann.close();
    await late.close();
  });

  test('leave notices: a close and a dropped TCP connection; the nick is free again', async () => {
    const { port, factory } = await serve();
    const ann = await ChatClient.open(port, 'ann');
    const bob = await ChatClient.open(port, 'bob');
    const cat = await ChatClient.open(port, 'cat');
    await bob.close();
    const left = await ann.next((f) => f.type === 'left');
    assert.deepEqual(left.type === 'left' && [left.nick, left.reason], ['bob', 'quit']);
    cat.ws.terminate();
    const gone = await ann.next((f) => f.type === 'left');
    assert.deepEqual(gone.type === 'left' && [gone.nick, gone.reason], ['cat', 'quit']);
    assert.deepEqual(factory.room.nicks, ['ann']);
    const again = await ChatClient.open(port, 'BOB');
    assert.deepEqual(again.of('welcome')[0]!.members, ['ann', 'BOB']);
    await again.close();
    await ann.close();
  });

  test('pages of another site are refused (403); the same origin is let in', async () => {
    const { port } = await serve();
    const foreign = new WebSocket(`ws://127.0.0.1:${port}/ws`, { origin: 'http://evil.example' });
    clients.add(foreign);
    foreign.on('error', () => {});
    const [, response] = (await within(
      once(foreign, 'unexpected-response'),
      10,
      'the refusal',
    )) as [unknown, http.IncomingMessage];
    assert.equal(response.statusCode, 403);
    response.destroy();
    foreign.terminate();
    const same = new WebSocket(`ws://127.0.0.1:${port}/ws`, { origin: `http://127.0.0.1:${port}` });
    clients.add(same);
    await within(once(same, 'open'), 10, 'a same-origin handshake');
    same.close();
    await within(once(same, 'close'), 10, 'its close');
    const plain = await get(port, '/ws');
    assert.equal(plain.status, 426, 'a plain GET of the endpoint: Upgrade Required');
  });

  test('a client that stops reading is dropped (1008); the others get every message', async (t) => {
    // A small bound so the test needs little data; the socket buffers of
    // the loopback still have to fill first.
    const maxBuffered = 64 * 1024;
    const { port, factory } = await serve({ maxBuffered });
    const fast = await ChatClient.open(port, 'fast');
    const watcher = await ChatClient.open(port, 'watcher');
    const slow = await ChatClient.open(port, 'slow');
    slow.ws.pause();

    const padding = 'p'.repeat(MAX_TEXT_LENGTH - 16);
    const window = 16;
    // 40 MB at most: far more than loopback socket buffers can hold.
    const limit = 20_000;
    let sent = 0;
    const isDropNotice: Predicate = (f) => f.type === 'left' && f.nick === 'slow';
    while (!fast.frames.some(isDropNotice)) {
      assert.ok(sent < limit, `slow was not dropped after ${sent} messages`);
      for (let i = 0; i < window; i++) fast.send({ type: 'say', text: `${++sent} ${padding}` });
      // Wait for our own echo: the fast client reads everything it is sent.
      const last = `${sent} ${padding}`;
      await fast.next((f) => f.type === 'message' && f.text === last);
    }
    t.diagnostic(`dropped after ${sent} messages of ${padding.length + 6} characters`);
    const drops = logged.filter((e) => e.message.startsWith('ws-chat: dropping'));
    assert.equal(drops.length, 1, 'the drop is logged once');
    const unread = Number(/(\d+) bytes unread/.exec(drops[0]!.message)?.[1]);
    assert.ok(
      unread > maxBuffered && unread <= maxBuffered + 4096,
      `dropped with ${unread} bytes queued: past the bound by at most one frame`,
    );
    // More messages after the drop reach everyone left.
    for (let i = 0; i < window; i++) fast.send({ type: 'say', text: `${++sent} after` });
    await fast.next((f) => f.type === 'message' && f.text === `${sent} after`);
    await watcher.next((f) => f.type === 'message' && f.text === `${sent} after`);

    for (const client of [fast, watcher]) {
      const texts = client.of('message').map((m) => Number.parseInt(m.text, 10));
      assert.equal(texts.length, sent, 'every message reached the clients that read');
      assert.equal(
        texts.every((n, i) => n === i + 1),
        true,
        'in order, none missing',
      );
      const notice = client.of('left');
      assert.deepEqual(
        notice.map((f) => [f.nick, f.reason]),
        [['slow', 'dropped']],
      );
    }
    assert.deepEqual(factory.room.nicks, ['fast', 'watcher']);
    assert.equal(factory.room.dropped, 1);
    const received = slow.of('message').length;
    assert.ok(received < sent, `the slow client got ${received} of ${sent} while paused`);

    // Reading again, it finds the close frame after what was queued.
    slow.ws.resume();
    const { code } = await within(slow.closed, 30, 'the slow client to be closed');
    assert.equal(code, 1008);
    assert.ok(
      slow.of('message').length < sent,
      'nothing was queued for the slow client after the drop',
    );
    await fast.close();
    await watcher.close();
  });
});

/**
 * Spawns `args` with node (its environment: this one's plus `env`), waits
 * for `listening on …PORT…` on stdout; returns the port.
 */
async function spawnServer(
  args: string[],
  env: Record<string, string> = {},
): Promise<{
  child: ChildProcess;
  port: number;
  exited: Promise<unknown[]>;
  stderr: () => string;
}> {
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: repo,
    env: { ...process.env, ...env },
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const exited = once(child, 'exit');
  const listening = /^listening on \S*?:(\d+)\/?$/m;
  while (!listening.test(stdout)) {
    await within(
      Promise.race([
        once(child.stdout!, 'data'),
        exited.then(([code]) => assert.fail(`exited ${code} before listening: ${stderr}`)),
      ]),
      60,
      `${args.join(' ')} to listen`,
    );
  }
  return { child, port: Number(listening.exec(stdout)![1]), exited, stderr: () => stderr };
}

async function chatThrough(port: number): Promise<void> {
  const page = await get(port, '/');
  assert.equal(page.status, 200);
  assert.match(page.body, /torsion chat/);
  const ann = await ChatClient.open(port, 'ann');
  const bob = await ChatClient.open(port, 'bob');
  ann.send({ type: 'say', text: 'over the wire' });
  await bob.next((f) => f.type === 'message' && f.text === 'over the wire');
  await ann.close();
  await bob.close();
}

describe('examples/ws-chat.ts as a program', () => {
  test('npx tsx examples/ws-chat.ts --port 0; SIGTERM exits 0', async () => {
    const script = join(repo, 'examples/ws-chat.ts');
    const server = await spawnServer(['--import', 'tsx', script, '--port', '0']);
    await chatThrough(server.port);
    // Still connected at shutdown: told the server is going away (1001).
    const stays = await ChatClient.open(server.port, 'stays');
    server.child.kill('SIGTERM');
    const { code: closeCode } = await within(stays.closed, 30, 'the close at shutdown');
    assert.equal(closeCode, 1001);
    const [code, signal] = await within(server.exited, 30, 'the script to exit');
    children.delete(server.child);
    assert.equal(signal, null);
    assert.equal(code, 0, server.stderr());
  });

  test('PORT in the environment is the default port; bad flags or ports exit 2', async () => {
    const script = join(repo, 'examples/ws-chat.ts');
    const server = await spawnServer(['--import', 'tsx', script], { PORT: '0' });
    assert.notEqual(server.port, 0, 'PORT=0 picked a free port');
    await chatThrough(server.port);
    server.child.kill('SIGTERM');
    const [code] = await within(server.exited, 30, 'the script to exit');
    children.delete(server.child);
    assert.equal(code, 0, server.stderr());
    const { PORT: _, ...withoutPort } = process.env;
    for (const [args, env, message] of [
      [[], { PORT: 'eighty' }, /^invalid --port: eighty$/m],
      [['--port', '70000'], {}, /^invalid --port: 70000$/m],
      [['--bogus'], {}, /^usage: \[--port 8080\] \[--interface 127\.0\.0\.1\]$/m],
    ] as const) {
      const run = await within(
        execFileAsync(process.execPath, ['--import', 'tsx', script, ...args], {
          cwd: repo,
          env: { ...withoutPort, ...env },
        }).then(
          () => assert.fail(`${args.join(' ')} exited 0`),
          (error: { code: number; stderr: string }) => error,
        ),
        30,
        'a refused command line to exit',
      );
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, message);
    }
  });

  test('torsion web --resource examples/ws-chat.ts; SIGINT exits 0', async () => {
    const server = await spawnServer([
      join(repo, 'bin/torsion.js'),
      'web',
      '--resource',
      'examples/ws-chat.ts',
      '--listen',
      'tcp:0:interface=127.0.0.1',
    ]);
    await chatThrough(server.port);
    server.child.kill('SIGINT');
    const [code, signal] = await within(server.exited, 30, 'torsion web to exit');
    children.delete(server.child);
    assert.equal(signal, null);
    assert.equal(code, 0, server.stderr());
  });
});

test('the server logged no error', () => {
  const errors = logged.filter((e) => e.isError).map((e) => e.message);
  assert.deepEqual(errors, []);
});
