/**
 * Flow control and liveness of WebSocket connections over real sockets:
 * a slow reader pauses the server-side producer (counted), pull producers,
 * input pause stops reading the socket (and holds back messages already
 * parsed), keep-alive pings drop a dead peer and spare a live one (Clock),
 * the closing handshake times out (Clock), the queued-output limit closes a
 * peer that does not read with 1008, and a broadcast to 1,000 concurrent
 * connections, all cleaned up.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WebSocket } from 'ws';
import { Clock } from '../src/reactor/clock.js';
import { TimeoutError } from '../src/reactor/errors.js';
import type { IPullProducer, IPushProducer } from '../src/reactor/interfaces.js';
import { WebSocketOverflowError } from '../src/web/websocket.js';
import {
  checkLeaksAfterEach,
  clientClosed,
  closeNormally,
  connectedClient,
  maskedFrame,
  openClient,
  Recorder,
  rawUpgrade,
  recordingFactory,
  recordingServer,
  startServer,
  waitFor,
} from './websocket-helpers.js';

checkLeaksAfterEach();

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A streaming producer that sends `size`-byte messages, one per turn, while
 * not paused, until `total` bytes went out; counts pauses and resumes.
 */
class Streamer implements IPushProducer {
  pauses = 0;
  resumes = 0;
  stops = 0;
  sent = 0;
  sentWhilePaused = 0;
  maxBuffered = 0;
  paused = false;
  #scheduled = false;

  constructor(
    readonly proto: Recorder,
    readonly size: number,
    readonly total: number,
  ) {}

  start(): void {
    this.proto.transport.registerProducer(this, true);
    this.#schedule();
  }

  pauseProducing(): void {
    this.pauses++;
    this.paused = true;
  }

  resumeProducing(): void {
    this.resumes++;
    this.paused = false;
    this.#schedule();
  }

  stopProducing(): void {
    this.stops++;
    this.paused = true;
  }

  #schedule(): void {
    if (this.#scheduled || this.sent >= this.total || this.stops > 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#step();
    });
  }

  #step(): void {
    // Up to 8 messages per turn while not paused.
    for (let i = 0; i < 8 && !this.paused && this.sent < this.total; i++) {
      this.proto.transport.sendMessage(Buffer.alloc(this.size, 0x61));
      this.sent += this.size;
      this.maxBuffered = Math.max(this.maxBuffered, this.proto.transport.bufferedAmount);
    }
    if (this.sent >= this.total) {
      this.proto.transport.unregisterProducer();
      return;
    }
    if (!this.paused) this.#schedule();
  }
}

describe('output flow control', () => {
  test('a slow reader pauses the server-side producer; reading again resumes it', async () => {
    const { server, ws, proto } = await connectedClient({ highWaterMark: 64 * 1024 });
    ws.pause(); // the client stops reading its socket
    const SIZE = 16 * 1024;
    const TOTAL = 48 * 1024 * 1024;
    const streamer = new Streamer(proto, SIZE, TOTAL);
    streamer.start();
    await waitFor(() => streamer.pauses >= 1, 'the producer to be paused', 30_000);
    const sentAtPause = streamer.sent;
    assert.ok(sentAtPause < TOTAL, 'paused before sending everything');
    // Paused means paused: nothing more is produced while the client does not read.
    for (let i = 0; i < 20; i++) await turn();
    assert.equal(streamer.sent, sentAtPause, 'no message sent while paused');
    assert.equal(streamer.resumes, 0, 'not resumed while the client does not read');
    assert.ok(
      proto.transport.bufferedAmount <= 64 * 1024 + 8 * SIZE,
      `queued output bounded: ${proto.transport.bufferedAmount}`,
    );

    let received = 0;
    ws.on('message', (data: Buffer) => {
      received += data.length;
    });
    ws.resume();
    await waitFor(() => received >= TOTAL, 'every byte at the client', 60_000);
    assert.equal(received, TOTAL, 'nothing lost or duplicated');
    assert.ok(streamer.resumes >= 1, 'resumed');
    assert.ok(streamer.pauses >= streamer.resumes, 'each resume undoes a pause');
    assert.ok(
      streamer.maxBuffered <= 64 * 1024 + 8 * SIZE,
      `bufferedAmount stayed near the mark: ${streamer.maxBuffered}`,
    );
    assert.equal(streamer.stops, 0, 'the producer finished and unregistered');
    await closeNormally(ws, proto, server);
  });

  test('a producer still registered when the connection closes gets stopProducing()', async () => {
    const { server, ws, proto } = await connectedClient();
    ws.pause();
    const streamer = new Streamer(proto, 16 * 1024, 64 * 1024 * 1024);
    streamer.start();
    await waitFor(() => streamer.pauses >= 1, 'paused', 30_000);
    assert.throws(
      () => proto.transport.registerProducer(streamer, true),
      { code: 'TORSION_ERR_PRODUCER_REGISTERED' },
      'second registration',
    );
    ws.terminate();
    await proto.lost.asPromise();
    assert.equal(streamer.stops, 1, 'stopped once');
    // Registering on a closed connection stops the producer at once.
    const late = new Streamer(proto, 1, 1);
    proto.transport.registerProducer(late, true);
    assert.equal(late.stops, 1, 'stopped at once');
    await server.close();
  });

  test('a pull producer is asked for more each time its output has flushed', async () => {
    const { server, ws, proto } = await connectedClient();
    const COUNT = 200;
    let asked = 0;
    let sent = 0;
    const producer: IPullProducer = {
      resumeProducing() {
        asked++;
        if (sent === COUNT) {
          proto.transport.unregisterProducer();
          proto.transport.loseConnection();
          return;
        }
        proto.transport.write(`chunk ${sent++}`);
      },
      stopProducing() {
        assert.fail('not stopped');
      },
    };
    const got: string[] = [];
    ws.on('message', (data: Buffer) => got.push(data.toString()));
    const closing = clientClosed(ws);
    proto.transport.registerProducer(producer, false);
    assert.equal((await closing).code, 1000, 'loseConnection after the producer unregistered');
    assert.equal(got.length, COUNT, 'every chunk');
    assert.equal(got[COUNT - 1], `chunk ${COUNT - 1}`, 'in order');
    assert.equal(asked, COUNT + 1, 'one resumeProducing per chunk, plus the last');
    await proto.lost.asPromise();
    await server.close();
  });

  test('loseConnection() waits for a registered producer to unregister', async () => {
    const { server, ws, proto } = await connectedClient();
    const producer: IPushProducer = {
      pauseProducing() {},
      resumeProducing() {},
      stopProducing() {},
    };
    proto.transport.registerProducer(producer, true);
    const got: string[] = [];
    ws.on('message', (d: Buffer) => got.push(d.toString()));
    const closing = clientClosed(ws);
    proto.transport.loseConnection();
    assert.equal(proto.transport.disconnecting, true, 'disconnecting');
    proto.transport.sendMessage('last words');
    await sleep(20);
    assert.equal(ws.readyState, ws.OPEN, 'still open while the producer is registered');
    proto.transport.unregisterProducer();
    assert.equal((await closing).code, 1000, 'closed');
    assert.deepEqual(got, ['last words'], 'what the producer sent arrived first');
    await proto.lost.asPromise();
    await server.close();
  });
});

describe('input flow control', () => {
  test('pauseProducing() stops reading the socket; resumeProducing() delivers everything', async () => {
    const { server, ws, proto } = await connectedClient();
    proto.transport.pauseProducing();
    const COUNT = 512;
    const payload = Buffer.alloc(64 * 1024, 0x62);
    for (let i = 0; i < COUNT; i++) ws.send(payload);
    // 32 MiB cannot all fit in the socket buffers of a peer that does not
    // read (its receive window does not grow): some stays at the client.
    await sleep(200);
    assert.equal(proto.messages.length, 0, 'nothing delivered while paused');
    assert.ok(ws.bufferedAmount > 0, `the client is held back by TCP (${ws.bufferedAmount})`);
    proto.transport.resumeProducing();
    await waitFor(() => proto.messages.length === COUNT, 'every message', 60_000);
    await waitFor(() => ws.bufferedAmount === 0, 'the client flushed');
    assert.ok(
      proto.messages.every((m) => (m.data as Buffer).length === payload.length),
      'whole messages',
    );
    await closeNormally(ws, proto, server);
  });

  test('messages already parsed when the protocol pauses wait for resumeProducing()', async () => {
    const { factory, server } = await recordingServer();
    const { peer, proto } = await rawUpgrade(server, factory);
    proto.onMessage = () => proto.transport.pauseProducing();
    // Ten messages in one packet: ws parses them all from one read.
    peer.socket.write(
      Buffer.concat(Array.from({ length: 10 }, (_, i) => maskedFrame(0x1, `n${i}`))),
    );
    await waitFor(() => proto.messages.length === 1, 'the first message');
    for (let i = 0; i < 10; i++) await turn();
    assert.equal(proto.messages.length, 1, 'the rest are held back');
    // Resume one at a time: each delivery pauses again.
    for (let i = 2; i <= 10; i++) {
      proto.transport.resumeProducing();
      assert.equal(proto.messages.length, i, `message ${i} delivered by resume`);
    }
    proto.onMessage = null;
    proto.transport.resumeProducing();
    peer.socket.write(maskedFrame(0x1, 'after'));
    await waitFor(() => proto.messages.length === 11, 'reading again');
    assert.deepEqual(
      proto.messages.map((m) => m.data),
      [...Array.from({ length: 10 }, (_, i) => `n${i}`), 'after'],
      'order kept',
    );
    peer.destroy();
    await proto.lost.asPromise();
    await server.close();
  });
});

describe('liveness (Clock)', () => {
  test('keep-alive: a peer that never answers pings is dropped after pingTimeout', async () => {
    const clock = new Clock();
    const { factory, server } = await recordingServer({
      reactor: clock,
      pingInterval: 1,
      pingTimeout: 0.5,
    });
    const { peer, proto } = await rawUpgrade(server, factory);
    assert.equal(clock.getDelayedCalls().length, 1, 'one timer per connection');
    clock.advance(0.999);
    for (let i = 0; i < 5; i++) await turn();
    assert.equal(peer.buffer.length, 0, 'no ping before the interval');
    clock.advance(0.001);
    const ping = await peer.frame();
    assert.equal(ping.opcode, 0x9, 'a ping after pingInterval');
    clock.advance(0.499);
    assert.equal(proto.lost.called, false, 'still alive before pingTimeout');
    clock.advance(0.001);
    const closed = await proto.lost.asPromise();
    assert.equal(closed.closeCode, 1006, 'dropped: no close frame');
    assert.ok(closed.cause instanceof TimeoutError, 'TimeoutError cause');
    assert.match((closed.cause as Error).message, /keep-alive/, 'says keep-alive');
    await peer.ended;
    assert.equal(clock.getDelayedCalls().length, 0, 'timer gone');
    await server.close();
  });

  test('keep-alive: a peer that answers pings, or sends messages, stays', async () => {
    const clock = new Clock();
    const { factory, server } = await recordingServer({
      reactor: clock,
      pingInterval: 1,
      pingTimeout: 0.5,
    });
    const ws = await openClient(server.url()); // ws answers pings by itself
    const proto = await factory.nextProtocol();
    for (let round = 1; round <= 3; round++) {
      clock.advance(1);
      await waitFor(() => proto.pongs.length === round, `pong ${round}`);
      clock.advance(0.5);
      assert.equal(proto.lost.called, false, `alive after round ${round}`);
    }
    // A raw peer that never answers pings but keeps talking is alive too.
    const { peer, proto: talker } = await rawUpgrade(server, factory);
    for (let i = 0; i < 4; i++) {
      peer.socket.write(maskedFrame(0x1, `tick ${i}`));
      await waitFor(() => talker.messages.length === i + 1, `tick ${i}`);
      clock.advance(0.75);
    }
    assert.equal(talker.lost.called, false, 'traffic counts as life');
    ws.close();
    peer.destroy();
    await proto.lost.asPromise();
    await talker.lost.asPromise();
    assert.equal(clock.getDelayedCalls().length, 0, 'timers gone');
    await server.close();
  });

  test('a closing handshake the peer never answers ends after closeTimeout', async () => {
    const clock = new Clock();
    const { factory, server } = await recordingServer({
      reactor: clock,
      closeTimeout: 60, // ws's own (real-time) timer never fires in this test
    });
    const { peer, proto } = await rawUpgrade(server, factory);
    proto.transport.close(4000, 'go');
    const frame = await peer.frame();
    assert.equal(frame.opcode, 0x8, 'close frame sent');
    assert.equal(frame.payload.readUInt16BE(0), 4000, 'with our code');
    clock.advance(59.9);
    for (let i = 0; i < 5; i++) await turn();
    assert.equal(proto.lost.called, false, 'waiting for the answer');
    clock.advance(0.1);
    const closed = await proto.lost.asPromise();
    assert.equal(closed.closeCode, 4000, 'the code we sent');
    assert.equal(closed.reason, 'go', 'and reason');
    assert.equal(closed.wasClean, false, 'not acknowledged');
    assert.ok(closed.cause instanceof TimeoutError, 'timeout cause');
    await peer.ended;
    await server.close();
  });
});

describe('slow peers', () => {
  test('more than maxBufferedAmount queued: the peer is closed with 1008', async () => {
    const factory = recordingFactory(Recorder);
    const LIMIT = 1024 * 1024;
    const server = await startServer(factory, { maxBufferedAmount: LIMIT });
    const ws = await openClient(server.url());
    const proto = await factory.nextProtocol();
    ws.pause();
    const message = Buffer.alloc(64 * 1024, 0x63);
    let accepted = 0;
    let refused = false;
    for (let i = 0; i < 4000 && !refused; i++) {
      if (proto.transport.sendMessage(message)) accepted++;
      else refused = true;
      if (i % 4 === 3) await turn();
    }
    assert.equal(refused, true, 'a send was refused');
    assert.ok(
      proto.transport.bufferedAmount <= LIMIT + message.length,
      `queue bounded by the limit plus one message (${proto.transport.bufferedAmount})`,
    );
    assert.equal(proto.transport.sendMessage('more'), false, 'closing: later sends refused');
    let received = 0;
    ws.on('message', () => received++);
    const closing = clientClosed(ws);
    ws.resume();
    const atClient = await closing;
    assert.equal(atClient.code, 1008, 'policy violation');
    assert.equal(received, accepted, 'the accepted messages arrived before the close');
    const closed = await proto.lost.asPromise();
    assert.equal(closed.closeCode, 1008, 'server side');
    assert.ok(closed.cause instanceof WebSocketOverflowError, 'overflow cause');
    await server.close();
  });
});

describe('scale', () => {
  test('1,000 concurrent connections receive a broadcast, then all close', async () => {
    const factory = recordingFactory(Recorder);
    // Keep-alive on (its default interval): 1,000 timers, all cancelled at the end.
    const server = await startServer(factory, { pingInterval: 20 });
    const N = 1000;
    const heapBefore = process.memoryUsage().heapUsed;
    const clients: WebSocket[] = [];
    for (let i = 0; i < N; i += 100) {
      clients.push(
        ...(await Promise.all(Array.from({ length: 100 }, () => openClient(server.url())))),
      );
    }
    await waitFor(() => server.resource.connections.size === N, '1,000 connections');
    let got = 0;
    const all = Promise.all(
      clients.map(
        (ws) =>
          new Promise<void>((resolve) =>
            ws.once('message', (data: Buffer) => {
              if (data.toString() === 'breaking news') got++;
              resolve();
            }),
          ),
      ),
    );
    let sent = 0;
    for (const proto of server.resource.connections) {
      if (proto.transport.sendMessage('breaking news')) sent++;
    }
    await all;
    assert.equal(sent, N, 'sent to every connection');
    assert.equal(got, N, 'every client got it');
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 512 * 1024 * 1024, `memory bounded (${Math.round(grown / 1e6)} MB)`);
    const closes = Promise.all(clients.map(clientClosed));
    for (const ws of clients) ws.close(1000);
    await closes;
    await waitFor(() => server.resource.connections.size === 0, 'every connection forgotten');
    await Promise.all(factory.built.map((p) => p.lost.asPromise()));
    await server.close();
  });
});
