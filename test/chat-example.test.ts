/**
 * examples/chat.ts over real TCP: nicks, broadcast to the others, /who,
 * renames, /quit and leave notices; a client that stops reading is dropped
 * once its send buffer passes the limit while another client keeps receiving
 * every line; and the script itself (port logged, Ctrl-C stops it).
 */

import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ChatFactory, ChatRoom, DEFAULT_MAX_BUFFERED } from '../examples/chat.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { InvalidArgumentError } from '../src/reactor/errors.js';
import { addObserver, type LogEvent } from '../src/reactor/log.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { spawnServer } from './cli-helpers.js';

/** A raw TCP client speaking lines (CRLF-terminated from the server). */
class LineClient {
  readonly lines: string[] = [];
  readonly closed: Promise<void>;
  #partial = '';
  #cursor = 0;
  #waiter: { test: (line: string) => boolean; resolve: (line: string) => void } | null = null;

  /** `onLine`: when given, lines go to it instead of being kept. */
  private constructor(
    readonly socket: Socket,
    readonly onLine: ((line: string) => void) | null,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#data(chunk));
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  static async connect(port: number, onLine: ((line: string) => void) | null = null) {
    const socket = net.connect({ host: '127.0.0.1', port });
    sockets.add(socket);
    await once(socket, 'connect');
    const client = new LineClient(socket, onLine);
    await client.next(/^\* Welcome/);
    return client;
  }

  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  /** The first line after the previous match that matches `pattern`. */
  next(pattern: RegExp | string): Promise<string> {
    const test =
      typeof pattern === 'string' ? (l: string) => l === pattern : (l: string) => pattern.test(l);
    for (let i = this.#cursor; i < this.lines.length; i++) {
      if (test(this.lines[i])) {
        this.#cursor = i + 1;
        return Promise.resolve(this.lines[i]);
      }
    }
    this.#cursor = this.lines.length;
    return new Promise((resolve) => {
      this.#waiter = { test, resolve };
    });
  }

  /** The lines received since the previous match. */
  unmatched(): string[] {
    return this.lines.slice(this.#cursor);
  }

  #data(chunk: string): void {
    let text = this.#partial + chunk;
    let nl = text.indexOf('\r\n');
    while (nl !== -1) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 2);
      if (this.onLine !== null && line.startsWith('<')) this.onLine(line);
      else this.#line(line);
      nl = text.indexOf('\r\n');
    }
    this.#partial = text;
  }

  #line(line: string): void {
    this.lines.push(line);
    const waiter = this.#waiter;
    if (waiter?.test(line)) {
      this.#waiter = null;
      this.#cursor = this.lines.length;
      waiter.resolve(line);
    }
  }
}

const sockets = new Set<Socket>();
const ports = new Set<Port>();
after(async () => {
  for (const s of sockets) s.destroy();
  for (const p of ports) await p.stopListening();
});

async function mount(room = new ChatRoom()): Promise<{ port: Port; portNumber: number }> {
  const port = listenTCP(reactor, 0, new ChatFactory(room), { interface: '127.0.0.1' });
  ports.add(port);
  await port.whenListening();
  return { port, portNumber: (port.getHost() as IPv4Address).port };
}

async function unmount(port: Port): Promise<void> {
  ports.delete(port);
  await port.stopListening();
}

async function join(portNumber: number, nick: string, onLine?: (line: string) => void) {
  const client = await LineClient.connect(portNumber, onLine ?? null);
  client.send(`/nick ${nick}`);
  await client.next(new RegExp(`^\\* You are ${nick}\\.`));
  return client;
}

describe('examples/chat.ts', () => {
  test('nicks, broadcast to the others, /who, rename, /quit', async () => {
    const room = new ChatRoom();
    const { port, portNumber } = await mount(room);
    const alice = await LineClient.connect(portNumber);
    alice.send('hello?');
    await alice.next('* Choose a nick first: /nick NAME');
    alice.send('/nick alice');
    await alice.next('* You are alice. 1 in the room.');

    const bob = await LineClient.connect(portNumber);
    bob.send('/nick ALICE');
    await bob.next('* ALICE is taken');
    bob.send('/nick not ok!');
    await bob.next(/^\* A nick is/);
    bob.send('/nick bob');
    await bob.next('* You are bob. 2 in the room.');
    await alice.next('* bob has joined');

    alice.send('hi bob');
    assert.equal(await bob.next(/^</), '<alice> hi bob');
    bob.socket.write('hi alice\n'); // nc sends a bare LF; send() uses CRLF as telnet does
    assert.equal(await alice.next(/^</), '<bob> hi alice');
    assert.deepEqual(alice.unmatched(), [], 'alice does not get her own line back');

    bob.send('/who');
    await bob.next('* In the room: alice, bob');
    bob.send('/frobnicate');
    await bob.next('* Unknown command /frobnicate; try /help');
    bob.send('/help');
    await bob.next(/^\* \/nick NAME/);

    bob.send('/nick robert');
    await bob.next('* You are now robert');
    await alice.next('* bob is now known as robert');

    bob.send('/quit');
    await bob.next('* Bye!');
    await bob.closed;
    await alice.next('* robert has left');
    assert.deepEqual(
      [...room.members].map((m) => m.nick),
      ['alice'],
    );

    // A client that leaves without /quit is announced too.
    const carol = await join(portNumber, 'carol');
    await alice.next('* carol has joined');
    carol.socket.destroy();
    await alice.next('* carol has left');

    alice.send('/quit');
    await alice.closed;
    // The client's close may come before the server's: wait (bounded) for it.
    for (let i = 0; i < 1000 && room.members.size > 0; i++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(room.members.size, 0);
    await unmount(port);
  });

  test('a line over MAX_LENGTH closes the connection with a notice', async () => {
    const { port, portNumber } = await mount();
    const client = await LineClient.connect(portNumber);
    client.send('x'.repeat(5000));
    await client.next(/^\* Line too long/);
    await client.closed;
    await unmount(port);
  });

  test('a client that does not read is dropped; the others receive everything', async () => {
    const room = new ChatRoom();
    const { port, portNumber } = await mount(room);
    const logged: LogEvent[] = [];
    const stopLog = addObserver((e) => logged.push(e));
    try {
      const alice = await join(portNumber, 'alice');
      let bobGot = 0;
      let bobBad: string | null = null;
      let bobWaiter: { n: number; resolve: () => void } | null = null;
      const payload = 'y'.repeat(4000);
      const bob = await join(portNumber, 'bob', (line) => {
        if (line !== `<alice> ${bobGot} ${payload}`) bobBad ??= line.slice(0, 40);
        bobGot++;
        if (bobWaiter !== null && bobGot >= bobWaiter.n) {
          bobWaiter.resolve();
          bobWaiter = null;
        }
      });
      const bobReceived = (n: number) =>
        new Promise<void>((resolve) => {
          if (bobGot >= n) resolve();
          else bobWaiter = { n, resolve };
        });
      const carol = await join(portNumber, 'carol');
      await alice.next('* carol has joined');
      await bob.next('* carol has joined');
      carol.socket.pause(); // carol stops reading

      // Send in batches; after each, bob must have received all of it.
      const batch = 64;
      const maxLines = 10_000; // ~40 MB: far beyond any kernel buffering
      let sent = 0;
      const dropped = bob.next('* carol has left (dropped: not reading)');
      let isDropped = false;
      dropped.then(() => {
        isDropped = true;
      });
      while (!isDropped && sent < maxLines) {
        const lines: string[] = [];
        for (let i = 0; i < batch; i++) lines.push(`${sent++} ${payload}\r\n`);
        alice.socket.write(lines.join(''));
        await bobReceived(sent);
      }
      assert.ok(isDropped, `carol was not dropped after ${sent} lines`);
      assert.equal(room.dropped, 1);
      assert.deepEqual(
        [...room.members].map((m) => m.nick),
        ['alice', 'bob'],
      );
      await alice.next('* carol has left (dropped: not reading)');

      // And the room goes on.
      for (let i = 0; i < batch; i++) alice.send(`${sent++} ${payload}`);
      await bobReceived(sent);
      assert.equal(bobBad, null, 'bob received every line, in order');
      assert.equal(bobGot, sent);

      const drops = logged.filter((e) => /^chat: dropping carol/.test(e.message));
      assert.equal(drops.length, 1);
      carol.socket.destroy();
      alice.send('/quit');
      bob.send('/quit');
      await alice.closed;
      await bob.closed;
    } finally {
      stopLog();
    }
    await unmount(port);
  });

  test('ChatRoom checks its limit', () => {
    assert.equal(new ChatRoom().maxBuffered, DEFAULT_MAX_BUFFERED);
    assert.throws(() => new ChatRoom(0), InvalidArgumentError);
    assert.throws(() => new ChatRoom(1.5), InvalidArgumentError);
  });

  test('the script logs its port, chats, and stops on SIGINT', async () => {
    const script = fileURLToPath(new URL('../examples/chat.ts', import.meta.url));
    const server = await spawnServer(
      ['--import', 'tsx', script, '--port', '0'],
      /chat server listening on ([\d.]+:\d+)/,
    );
    assert.equal(server.addresses[0], `127.0.0.1:${server.port}`);
    const client = await join(server.port, 'zed');
    const stopped = server.stop('SIGINT');
    await client.next('* Server shutting down');
    await client.closed;
    assert.equal(await stopped, 0, server.stderr());
    assert.match(server.stdout(), /chat server stopped/);
  });
});
