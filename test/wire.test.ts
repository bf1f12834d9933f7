/**
 * The wire services over real TCP on 127.0.0.1: echo, discard, chargen
 * (including a client that does not read: the server's producer is paused,
 * and resumed once the client reads again), daytime and QOTD; plus their
 * in-memory behaviour with a Clock.
 */

import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';
import type { ServerFactory } from '../src/protocols/protocol.js';
import { asctime, Chargen, Daytime, Discard, Echo, QOTD } from '../src/protocols/wire.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import { Deferred } from '../src/reactor/deferred.js';
import type { IProtocol } from '../src/reactor/interfaces.js';
import type { Port } from '../src/reactor/port.js';
import { reactor } from '../src/reactor/reactor.js';
import { listenTCP } from '../src/reactor/tcp.js';
import { StringTransport } from '../src/testing/string-transport.js';

async function serve(factory: ServerFactory<IProtocol>): Promise<{ port: Port; number: number }> {
  const port = listenTCP(reactor, 0, factory, { interface: '127.0.0.1' });
  await port.whenListening();
  return { port, number: (port.getHost() as IPv4Address).port };
}

/** Connects a raw socket, optionally writes, and collects everything until the server closes. */
function readAll(port: number, send?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    if (send !== undefined) socket.write(send);
  });
}

/** The first `n` bytes of the RFC 864 pattern, computed independently. */
function expectedChargen(n: number): string {
  const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');
  let out = '';
  for (let line = 0; out.length < n; line++) {
    const from = line % 95;
    out += `${(printable + printable).slice(from, from + 72)}\r\n`;
  }
  return out.slice(0, n);
}

describe('wire services over TCP', () => {
  test('Echo sends back what it gets, at every size', async () => {
    const { port, number } = await serve(Echo.factory());
    try {
      const payload = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
      const echoed = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let got = 0;
        const socket = net.connect({ port: number, host: '127.0.0.1' });
        socket.on('error', reject);
        socket.on('data', (c) => {
          chunks.push(c);
          got += c.length;
          if (got >= payload.length) {
            socket.destroy();
            resolve(Buffer.concat(chunks));
          }
        });
        socket.write(payload);
      });
      assert.ok(echoed.equals(payload));
    } finally {
      await port.stopListening();
    }
  });

  test('Discard reads everything and sends nothing', async () => {
    const { port, number } = await serve(Discard.factory());
    try {
      const reply = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        const socket = net.connect({ port: number, host: '127.0.0.1', allowHalfOpen: true });
        socket.on('data', (c) => chunks.push(c));
        socket.on('error', reject);
        socket.on('close', () => resolve(Buffer.concat(chunks)));
        socket.write(Buffer.alloc(256 * 1024, 0x78));
        socket.end(); // the server closes when it sees our FIN
      });
      assert.equal(reply.length, 0);
    } finally {
      await port.stopListening();
    }
  });

  test('Daytime sends the UTC date in asctime format, then closes', async () => {
    const fixed = new Date(Date.UTC(1993, 5, 6, 21, 49, 8));
    const { port, number } = await serve(Daytime.factory(() => fixed));
    try {
      const reply = (await readAll(number)).toString();
      assert.equal(reply, 'Sun Jun  6 21:49:08 1993\r\n');
    } finally {
      await port.stopListening();
    }
    const { port: live, number: liveNumber } = await serve(Daytime.factory());
    try {
      const reply = (await readAll(liveNumber)).toString();
      assert.match(
        reply,
        /^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\r\n$/,
      );
    } finally {
      await live.stopListening();
    }
  });

  test('QOTD sends its quote, then closes (default and configured)', async () => {
    const { port, number } = await serve(QOTD.factory());
    const { port: custom, number: customNumber } = await serve(QOTD.factory('Less is more.\r\n'));
    try {
      assert.equal((await readAll(number)).toString(), 'An apple a day keeps the doctor away.\r\n');
      assert.equal((await readAll(customNumber)).toString(), 'Less is more.\r\n');
    } finally {
      await port.stopListening();
      await custom.stopListening();
    }
  });

  test('Chargen streams the RFC 864 pattern', async () => {
    const { port, number } = await serve(Chargen.factory());
    try {
      const want = 200_000;
      const got = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let n = 0;
        const socket = net.connect({ port: number, host: '127.0.0.1' });
        socket.on('error', reject);
        socket.on('data', (c) => {
          chunks.push(c);
          n += c.length;
          if (n >= want) {
            socket.destroy();
            resolve(Buffer.concat(chunks).subarray(0, want));
          }
        });
      });
      assert.equal(got.toString('latin1'), expectedChargen(want));
    } finally {
      await port.stopListening();
    }
  });

  test('Chargen is paused by a client that does not read, and resumed when it reads', async () => {
    const events: string[] = [];
    const paused = new Deferred<void>();
    const resumed = new Deferred<void>();
    const lost = new Deferred<void>();
    let written = 0;
    let bufferedAtPause = -1;
    class Watched extends Chargen {
      override connectionMade(): void {
        const transport = this.transport;
        const write = transport.write.bind(transport);
        transport.write = (data) => {
          written += data.length;
          write(data);
        };
        super.connectionMade();
      }
      override pauseProducing(): void {
        events.push('pause');
        if (bufferedAtPause === -1) bufferedAtPause = this.transport.bufferedAmount;
        super.pauseProducing();
        if (!paused.called) paused.callback(undefined);
      }
      override resumeProducing(): void {
        events.push('resume');
        super.resumeProducing();
        if (!resumed.called) resumed.callback(undefined);
      }
      override connectionLost(): void {
        super.connectionLost();
        lost.callback(undefined);
      }
    }
    const factory = Chargen.factory();
    factory.protocol = Watched;
    const { port, number } = await serve(factory);
    const socket = net.connect({ port: number, host: '127.0.0.1' });
    socket.pause(); // never read: the kernel buffers fill, then the server's
    socket.on('error', () => {});
    try {
      await paused;
      assert.equal(events[0], 'pause');
      const atPause = written;
      // What the kernel took is the kernel's; in user space at most the
      // high-water mark plus one block waits.
      assert.ok(bufferedAtPause <= 64 * 1024 + Chargen.pattern.length, `${bufferedAtPause}`);
      // While the client does not read, nothing more is written.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      assert.equal(written, atPause);
      assert.deepEqual(events, ['pause']);
      // Reading again drains the buffers: the producer is resumed.
      let read = 0;
      socket.on('data', (c: Buffer) => {
        read += c.length;
      });
      socket.resume();
      await resumed;
      assert.ok(read > 0 || written > atPause);
      assert.deepEqual(events.slice(0, 2), ['pause', 'resume']);
    } finally {
      socket.destroy();
      await lost;
      await port.stopListening();
    }
  });
});

describe('wire services in memory', () => {
  test('Chargen against a transport without flow control writes in bounded turns', () => {
    const clock = new Clock();
    const p = new Chargen(clock);
    const t = new StringTransport();
    p.makeConnection(t);
    assert.equal(t.producer, p);
    assert.equal(t.streaming, true);
    const perTurn = t.written.length;
    assert.ok(perTurn > 0 && perTurn <= 16);
    clock.advance(0);
    assert.equal(t.written.length, 2 * perTurn);
    p.pauseProducing();
    clock.advance(0);
    assert.equal(t.written.length, 2 * perTurn);
    assert.equal(clock.getDelayedCalls().length, 0);
    p.resumeProducing();
    assert.equal(t.written.length, 3 * perTurn);
    p.stopProducing();
    clock.advance(0);
    assert.equal(t.written.length, 3 * perTurn);
    assert.equal(clock.getDelayedCalls().length, 0);
    p.resumeProducing();
    assert.equal(t.written.length, 3 * perTurn, 'stopped for good');
  });

  test('asctime pads the day with a space', () => {
    assert.equal(asctime(new Date(Date.UTC(2024, 1, 29, 0, 0, 5))), 'Thu Feb 29 00:00:05 2024');
    assert.equal(asctime(new Date(Date.UTC(2000, 0, 1, 9, 8, 7))), 'Sat Jan  1 09:08:07 2000');
  });

  test('QOTD.getQuote can be overridden', () => {
    class Random extends QOTD {
      override getQuote(): string {
        return 'chosen\r\n';
      }
    }
    const t = new StringTransport();
    new Random().makeConnection(t);
    assert.equal(t.value().toString(), 'chosen\r\n');
    assert.ok(t.disconnecting);
  });

  test('Echo writes back; Discard writes nothing', () => {
    const t = new StringTransport();
    const e = new Echo();
    e.makeConnection(t);
    e.dataReceived(Buffer.from('ping'));
    assert.equal(t.value().toString(), 'ping');
    const u = new StringTransport();
    const d = new Discard();
    d.makeConnection(u);
    d.dataReceived(Buffer.from('ping'));
    assert.equal(u.value().length, 0);
  });
});
