/**
 * LineReceiver and LineOnlyReceiver: lines fed whole, byte by byte, in
 * packets of 1–9 bytes and split at every point; raw mode with carried-over
 * bytes; MAX_LENGTH with and without a delimiter seen; pause/resume mid-buffer;
 * re-entrancy; closing mid-buffer; views staying valid; linear time on
 * 100 MiB; and a real TCP round trip.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import { LineOnlyReceiver, LineReceiver, NotImplementedError } from '../src/protocols/basic.js';
import { ClientFactory, Factory } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { Clock } from '../src/reactor/clock.js';
import { Deferred } from '../src/reactor/deferred.js';
import type { IReactorTime } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';
import { connectTCP, listenTCP } from '../src/reactor/tcp.js';
import { connectedServerAndClient } from '../src/testing/pump.js';
import { StringTransport } from '../src/testing/string-transport.js';
import { cuts } from './receiver-helpers.js';

// ---------------------------------------------------------------------- helpers

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const strs = (lines: Buffer[]): string[] => lines.map((l) => l.toString('latin1'));

function connect<P extends { makeConnection(t: StringTransport): void }>(p: P): StringTransport {
  const t = new StringTransport();
  p.makeConnection(t);
  return t;
}

/**
 * The LineTester of Twisted's test_basic: `len N` announces N raw bytes
 * after the next empty line; `pause`, `rawpause`, `stop`, `produce`,
 * `unproduce` act as named; overlong lines re-feed what follows.
 */
class LineTester extends LineReceiver {
  override delimiter = b('\n');
  override MAX_LENGTH = 64;
  received: Buffer[] = [];
  length = 0;

  constructor(readonly clock: IReactorTime | null = null) {
    super();
  }

  override lineReceived(line: Buffer): void {
    this.received.push(line);
    const text = line.toString('latin1');
    if (text === '') this.setRawMode();
    else if (text === 'pause') {
      this.pauseProducing();
      this.clock!.callLater(0, () => this.resumeProducing());
    } else if (text === 'rawpause') {
      this.pauseProducing();
      this.setRawMode();
      this.received.push(Buffer.alloc(0));
      this.clock!.callLater(0, () => this.resumeProducing());
    } else if (text === 'stop') this.stopProducing();
    else if (text.startsWith('len ')) this.length = Number(text.slice(4));
    else if (text.startsWith('produce')) this.transport.registerProducer(this, false);
    else if (text.startsWith('unproduce')) this.transport.unregisterProducer();
  }

  override rawDataReceived(data: Buffer): void {
    const mine = data.subarray(0, this.length);
    const rest = data.subarray(this.length);
    this.length -= mine.length;
    const last = this.received.length - 1;
    this.received[last] = Buffer.concat([this.received[last], mine]);
    if (this.length === 0) this.setLineMode(rest);
  }

  override lineLengthExceeded(line: Buffer): void {
    if (line.length > this.MAX_LENGTH + 1) this.setLineMode(line.subarray(this.MAX_LENGTH + 1));
  }
}

/** Records lines; optional hooks per line. */
class Lines extends LineReceiver {
  lines: Buffer[] = [];
  raw: Buffer[] = [];
  exceeded: Buffer[] = [];
  onLine: ((line: Buffer, self: Lines) => void) | null = null;

  override lineReceived(line: Buffer): void {
    this.lines.push(line);
    this.onLine?.(line, this);
  }

  override rawDataReceived(data: Buffer): void {
    this.raw.push(data);
  }
}

class Catcher extends LineReceiver {
  longLines: Buffer[] = [];
  override lineReceived(): void {}
  override lineLengthExceeded(data: Buffer): void {
    this.longLines.push(data);
  }
}

// ---------------------------------------------------------------------- LineReceiver

describe('LineReceiver: framing', () => {
  const buffer = b(
    'len 10\n\n0123456789len 5\n\n1234\nlen 20\nfoo 123\n\n0123456789\n012345678len 0\n' +
      'foo 5\n\n1234567890123456789012345678901234567890123456789012345678901234567890\n' +
      'len 1\n\na',
  );
  const output = [
    'len 10',
    '0123456789',
    'len 5',
    '1234\n',
    'len 20',
    'foo 123',
    '0123456789\n012345678',
    'len 0',
    'foo 5',
    '',
    '67890',
    'len 1',
    'a',
  ];

  test('lines and raw blocks (mode switches carry the rest over) at every cut', () => {
    for (const [name, parts] of cuts(buffer)) {
      const p = new LineTester();
      connect(p);
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(strs(p.received), output, name);
    }
  });

  test('CRLF split between its two bytes, and lines spanning chunks, at every cut', () => {
    const data = b('alpha\r\nbeta\r\n\r\ngamma delta\r\nx\r\n');
    for (const [name, parts] of cuts(data)) {
      const p = new Lines();
      connect(p);
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(strs(p.lines), ['alpha', 'beta', '', 'gamma delta', 'x'], name);
    }
  });

  test('a multi-byte delimiter with a repeated prefix at every cut', () => {
    const data = b('a||b|||c||||d');
    for (const [name, parts] of cuts(data)) {
      const p = new Lines();
      p.delimiter = b('||');
      connect(p);
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(strs(p.lines), ['a', 'b', '|c', ''], name);
      assert.equal(p.clearLineBuffer().toString(), 'd', name);
    }
  });

  test('an HTTP-like head then a raw body then lines again, at every cut', () => {
    class Head extends LineReceiver {
      events: string[] = [];
      #remaining = 0;
      override lineReceived(line: Buffer): void {
        const text = line.toString();
        this.events.push(`line:${text}`);
        if (text.startsWith('Content-Length: ')) this.#remaining = Number(text.slice(16));
        if (text === '' && this.#remaining > 0) this.setRawMode();
      }
      override rawDataReceived(data: Buffer): void {
        const body = data.subarray(0, this.#remaining);
        this.#remaining -= body.length;
        // Raw chunking follows the packets: merge consecutive raw pieces.
        const last = this.events.length - 1;
        if (this.events[last].startsWith('raw:')) this.events[last] += body.toString();
        else this.events.push(`raw:${body.toString()}`);
        if (this.#remaining === 0) this.setLineMode(data.subarray(body.length));
      }
    }
    const data = b('POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\nab\r\ncdeNEXT\r\n\r\n');
    for (const [name, parts] of cuts(data)) {
      const p = new Head();
      connect(p);
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(
        p.events,
        [
          'line:POST / HTTP/1.1',
          'line:Content-Length: 7',
          'line:',
          'raw:ab\r\ncde',
          'line:NEXT',
          'line:',
        ],
        name,
      );
    }
  });

  test('flipping modes on every line does not grow the stack', () => {
    class Flipper extends LineReceiver {
      override delimiter = b('\n');
      lines: Buffer[] = [];
      override lineReceived(line: Buffer): void {
        this.lines.push(line);
        this.setRawMode();
      }
      override rawDataReceived(data: Buffer): void {
        this.setLineMode(data.subarray(1));
      }
    }
    const p = new Flipper();
    connect(p);
    const n = 20_000;
    p.dataReceived(b('x\nx'.repeat(n)));
    assert.equal(Buffer.concat(p.lines).toString(), 'x'.repeat(n));
  });

  test('lines are views that stay valid while more data arrives and is buffered', () => {
    const p = new Lines();
    p.delimiter = b('\n');
    connect(p);
    const expected: string[] = [];
    let stream = '';
    for (let i = 0; i < 500; i++) {
      const line = `line ${i} ${'z'.repeat(i % 37)}`;
      expected.push(line);
      stream += `${line}\n`;
    }
    const data = b(stream);
    // Uneven pieces: lines span chunks, tails grow through the owned store.
    for (let i = 0, size = 1; i < data.length; i += size, size = (size * 7 + 3) % 61 || 1) {
      p.dataReceived(data.subarray(i, i + size));
    }
    assert.deepEqual(strs(p.lines), expected);
  });

  test('lines are Buffers in every respect', () => {
    const p = new Lines();
    connect(p);
    p.dataReceived(b('first\r\nsec'));
    p.dataReceived(b('ond\r\n'));
    for (const line of p.lines) {
      assert.ok(Buffer.isBuffer(line));
      assert.ok(line instanceof Buffer);
      assert.equal(line.constructor.name, 'Buffer');
      assert.ok(Buffer.isBuffer(line.subarray(1)));
      assert.equal(line.readUInt8(0), line[0]);
      assert.match(inspect(line), /^<Buffer /);
    }
    assert.deepEqual(strs(p.lines), ['first', 'second']);
    assert.equal(Buffer.concat(p.lines).toString(), 'firstsecond');
  });

  test('the delimiter may change between lines, even from inside lineReceived', () => {
    const p = new Lines();
    connect(p);
    p.onLine = (line, self) => {
      if (line.toString() === 'switch') self.delimiter = b(';');
    };
    for (const [name, parts] of cuts(b('a\r\nswitch\r\nb;c;d'))) {
      p.lines = [];
      p.delimiter = b('\r\n');
      p.clearLineBuffer();
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(strs(p.lines), ['a', 'switch', 'b', 'c'], name);
    }
  });

  test('clearLineBuffer returns what is buffered, also from inside lineReceived', () => {
    class Clearing extends LineReceiver {
      line: Buffer | null = null;
      rest: Buffer | null = null;
      override lineReceived(line: Buffer): void {
        this.line = line;
        this.rest = this.clearLineBuffer();
      }
    }
    const p = new Clearing();
    p.dataReceived(b('foo\r\nbar\r\nbaz'));
    assert.equal(p.line?.toString(), 'foo');
    assert.equal(p.rest?.toString(), 'bar\r\nbaz');
    p.dataReceived(b('quux\r\n'));
    assert.equal(p.line?.toString(), 'quux');
    assert.equal(p.rest?.toString(), '');
  });

  test('data given to dataReceived from inside lineReceived is appended behind the buffer', () => {
    const p = new Lines();
    connect(p);
    p.onLine = (line, self) => {
      if (line.toString() === 'inject') self.dataReceived(b('injected\r\n'));
    };
    p.dataReceived(b('inject\r\nafter\r\npart'));
    p.dataReceived(b('ial\r\n'));
    // As in Twisted: appended to what is buffered ("part"), handled by the running loop.
    assert.deepEqual(strs(p.lines), ['inject', 'after', 'partinjected', 'ial']);
  });

  test('loseConnection inside lineReceived stops delivery of the rest of the buffer', () => {
    for (const [name, parts] of cuts(b('one\r\nquit\r\ntwo\r\nthree\r\n'))) {
      const p = new Lines();
      const t = connect(p);
      p.onLine = (line, self) => {
        if (line.toString() === 'quit') self.transport.loseConnection();
      };
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(strs(p.lines), ['one', 'quit'], name);
      assert.ok(t.disconnecting);
    }
  });

  test('sendLine writes the line and the delimiter in one write', () => {
    const p = new Lines();
    const t = connect(p);
    p.sendLine('héllo');
    p.sendLine(b('bytes'));
    p.delimiter = b('\n');
    p.sendLine(new Uint8Array([0x41]));
    assert.equal(t.written.length, 3);
    assert.equal(t.value().toString(), 'héllo\r\nbytes\r\nA\n');
  });

  test('rawDataReceived must be overridden to use raw mode', () => {
    const p = new Lines();
    assert.throws(
      () => LineReceiver.prototype.rawDataReceived.call(p, b('x')),
      NotImplementedError,
    );
  });
});

describe('LineReceiver: pause, resume, stop', () => {
  test('pause inside lineReceived holds the rest until resumeProducing (packets 1–9)', () => {
    const buf = b('twiddle1\ntwiddle2\npause\ntwiddle3\n');
    for (const [name, parts] of cuts(buf)) {
      const clock = new Clock();
      const p = new LineTester(clock);
      const t = connect(p);
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(strs(p.received), ['twiddle1', 'twiddle2', 'pause'], name);
      assert.equal(t.producerState, 'paused', name);
      clock.advance(0);
      assert.deepEqual(strs(p.received), ['twiddle1', 'twiddle2', 'pause', 'twiddle3'], name);
      assert.equal(t.producerState, 'producing', name);
    }
  });

  test('pause and raw mode together: raw data waits for the resume', () => {
    const buf = b('twiddle1\ntwiddle2\nlen 5\nrawpause\n12345twiddle3\n');
    for (const [name, parts] of cuts(buf)) {
      const clock = new Clock();
      const p = new LineTester(clock);
      connect(p);
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(strs(p.received), ['twiddle1', 'twiddle2', 'len 5', 'rawpause', ''], name);
      clock.advance(0);
      assert.deepEqual(
        strs(p.received),
        ['twiddle1', 'twiddle2', 'len 5', 'rawpause', '12345', 'twiddle3'],
        name,
      );
    }
  });

  test('stopProducing inside lineReceived: nothing more is delivered', () => {
    const buf = b('twiddle1\ntwiddle2\nstop\nmore\nstuff\n');
    for (const [name, parts] of cuts(buf)) {
      const p = new LineTester();
      const t = connect(p);
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(strs(p.received), ['twiddle1', 'twiddle2', 'stop'], name);
      assert.equal(t.producerState, 'stopped', name);
    }
  });

  test('a LineReceiver can be registered as a producer from inside lineReceived', () => {
    const p = new LineTester();
    const t = connect(p);
    p.dataReceived(b('produce\nhello world\nunproduce\ngoodbye\n'));
    assert.deepEqual(strs(p.received), ['produce', 'hello world', 'unproduce', 'goodbye']);
    assert.equal(t.producer, null);
  });

  test('a pause from outside holds lines received meanwhile; resume delivers them at once', () => {
    const p = new Lines();
    const t = connect(p);
    p.dataReceived(b('a\r\nb'));
    p.pauseProducing();
    p.dataReceived(b('\r\nc\r\n'));
    p.dataReceived(b('d\r\n'));
    assert.deepEqual(strs(p.lines), ['a']);
    assert.equal(t.producerState, 'paused');
    p.resumeProducing();
    assert.deepEqual(strs(p.lines), ['a', 'b', 'c', 'd']);
  });

  test('over the in-memory pump: pausing the protocol pauses the peer transport', () => {
    const clock = new Clock();
    const { server, client, pump } = connectedServerAndClient<LineTester, Lines>(
      () => new LineTester(clock),
      () => new Lines(),
      { chunkSize: 3 },
    );
    client.transport.write('one\npause\ntwo\nthree\n');
    pump.flush();
    assert.deepEqual(strs(server.received), ['one', 'pause']);
    clock.advance(0);
    pump.flush();
    assert.deepEqual(strs(server.received), ['one', 'pause', 'two', 'three']);
  });
});

describe('LineReceiver: MAX_LENGTH', () => {
  const setup = (max = 6): { p: Catcher; t: StringTransport } => {
    const p = new Catcher();
    p.MAX_LENGTH = max;
    return { p, t: connect(p) };
  };

  test('a line over MAX_LENGTH with its delimiter closes the connection by default', () => {
    const p = new Lines();
    const t = connect(p);
    p.dataReceived(b(`${'x'.repeat(p.MAX_LENGTH + 1)}\r\nr`));
    assert.ok(t.disconnecting);
    assert.deepEqual(p.lines, []);
  });

  test('MAX_LENGTH + len(delimiter) bytes without a delimiter close the connection', () => {
    const p = new Lines();
    const t = connect(p);
    p.dataReceived(b('x'.repeat(p.MAX_LENGTH + 2)));
    assert.ok(t.disconnecting);
  });

  test('MAX_LENGTH bytes plus the first byte of the delimiter are still fine', () => {
    const p = new Lines();
    const t = connect(p);
    p.dataReceived(b(`${'x'.repeat(p.MAX_LENGTH)}\r`));
    assert.ok(!t.disconnecting);
    p.dataReceived(b('\n'));
    assert.equal(p.lines[0].length, p.MAX_LENGTH);
  });

  test('a line of MAX_LENGTH whose delimiter straddles packets is accepted', () => {
    const p = new Lines();
    p.delimiter = b('\r\n');
    p.MAX_LENGTH = 4;
    const t = connect(p);
    p.dataReceived(b('xxxx'));
    p.dataReceived(b('\r'));
    p.dataReceived(b('\nxxx'));
    assert.ok(!t.disconnecting);
    assert.deepEqual(strs(p.lines), ['xxxx']);
  });

  test('lineLengthExceeded gets all unended bytes', () => {
    const { p } = setup();
    const excessive = b('x'.repeat(14));
    p.dataReceived(excessive);
    assert.deepEqual(strs(p.longLines), [excessive.toString()]);
  });

  test('lineLengthExceeded gets everything after a short line', () => {
    const { p } = setup();
    const excessive = 'x'.repeat(14);
    p.dataReceived(b(`x\r\n${excessive}`));
    assert.deepEqual(strs(p.longLines), [excessive]);
  });

  test('lineLengthExceeded gets the long line, its delimiter and the rest', () => {
    const { p } = setup();
    const one = `${'x'.repeat(14)}\r\n${'x'.repeat(14)}`;
    p.dataReceived(b(one));
    assert.deepEqual(strs(p.longLines), [one]);
    const { p: q } = setup();
    const two = `${'x'.repeat(14)}\r\n`.repeat(2);
    q.dataReceived(b(two));
    assert.deepEqual(strs(q.longLines), [two]);
  });

  test('the limit applies byte by byte too, and lines before it are delivered', () => {
    for (const [name, parts] of cuts(b('ok\r\nabcdefgh\r\n'))) {
      const p = new Lines();
      p.MAX_LENGTH = 6;
      const t = connect(p);
      for (const part of parts) {
        if (t.disconnecting) break;
        p.dataReceived(part);
      }
      assert.deepEqual(strs(p.lines), ['ok'], name);
      assert.ok(t.disconnecting, name);
    }
  });
});

describe('LineReceiver: linear time', () => {
  /** Feeds 100 MiB of `line` in 64 KiB views of one pattern buffer; returns the line count. */
  function parse100MiB(line: string, delimiter: string): { count: number; last: string } {
    class Counter extends LineReceiver {
      count = 0;
      last: Buffer = Buffer.alloc(0);
      override lineReceived(l: Buffer): void {
        this.count++;
        this.last = l;
      }
    }
    const p = new Counter();
    p.delimiter = b(delimiter);
    connect(p);
    const unit = b(line);
    // 640 KiB: a whole number of lines and of 64 KiB chunks.
    const pattern = Buffer.alloc(unit.length * 65536);
    for (let i = 0; i < 65536; i++) unit.copy(pattern, i * unit.length);
    const chunk = 64 * 1024;
    const total = 100 * 1024 * 1024;
    for (let sent = 0; sent < total; sent += chunk) {
      const at = sent % pattern.length;
      p.dataReceived(pattern.subarray(at, at + chunk));
    }
    return { count: p.count, last: p.last.toString() };
  }

  test('100 MiB of 10-byte lines ("123456789\\n") in 64 KiB chunks: 10,485,760 lines', () => {
    const { count, last } = parse100MiB('123456789\n', '\n');
    assert.equal(count, 10_485_760);
    assert.equal(last, '123456789');
  });

  test('100 MiB of 10-byte CRLF lines (8-byte payloads): 10,485,760 lines', () => {
    const { count, last } = parse100MiB('12345678\r\n', '\r\n');
    assert.equal(count, 10_485_760);
    assert.equal(last, '12345678');
  });

  test('one long line arriving one byte at a time is buffered in linear time', () => {
    const p = new Lines();
    p.MAX_LENGTH = 1 << 20;
    connect(p);
    const one = b('y');
    for (let i = 0; i < 1 << 19; i++) p.dataReceived(one);
    p.dataReceived(b('\r\n'));
    assert.equal(p.lines.length, 1);
    assert.equal(p.lines[0].length, 1 << 19);
  });
});

// ---------------------------------------------------------------------- LineOnlyReceiver

class OnlyLines extends LineOnlyReceiver {
  override delimiter = b('\n');
  override MAX_LENGTH = 64;
  lines: Buffer[] = [];
  override lineReceived(line: Buffer): void {
    this.lines.push(line);
    if (line.toString() === 'quit') this.transport.loseConnection();
  }
}

describe('LineOnlyReceiver', () => {
  const buffer = b('foo\n    bleakness\n    desolation\n    plastic forks\n    ');

  test('lines at every cut', () => {
    for (const [name, parts] of cuts(buffer)) {
      const p = new OnlyLines();
      connect(p);
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(
        strs(p.lines),
        ['foo', '    bleakness', '    desolation', '    plastic forks'],
        name,
      );
    }
  });

  test('a line over MAX_LENGTH closes the connection', () => {
    const p = new OnlyLines();
    const t = connect(p);
    p.dataReceived(b(`${'x'.repeat(p.MAX_LENGTH + 2)}\r\nr`));
    assert.ok(t.disconnecting);
    const q = new OnlyLines();
    const u = connect(q);
    q.dataReceived(b(`${'x'.repeat(q.MAX_LENGTH + 1)}\nnext\n`));
    assert.ok(u.disconnecting);
    assert.deepEqual(q.lines, []);
  });

  test('lines after one that closed the connection are dropped', () => {
    for (const [name, parts] of cuts(b('a\nquit\nb\nc\n'))) {
      const p = new OnlyLines();
      connect(p);
      for (const part of parts) p.dataReceived(part);
      assert.deepEqual(strs(p.lines), ['a', 'quit'], name);
    }
  });

  test('sendLine', () => {
    const p = new OnlyLines();
    const t = connect(p);
    p.sendLine('hi');
    assert.equal(t.value().toString(), 'hi\n');
  });
});

// ---------------------------------------------------------------------- real TCP

describe('LineReceiver over TCP', () => {
  test('an upper-casing line server answers every line, sent in odd pieces', async () => {
    class Upper extends LineReceiver {
      override lineReceived(line: Buffer): void {
        this.sendLine(line.toString().toUpperCase());
        if (line.toString() === 'bye') this.transport.loseConnection();
      }
    }
    class Client extends LineReceiver {
      lines: string[] = [];
      readonly done = new Deferred<void>();
      override connectionMade(): void {
        const payload = b(
          `${Array.from({ length: 1000 }, (_, i) => `line ${i}`).join('\r\n')}\r\nbye\r\n`,
        );
        for (let i = 0, n = 1; i < payload.length; i += n, n = (n % 97) + 1) {
          this.transport.write(payload.subarray(i, i + n));
        }
      }
      override lineReceived(line: Buffer): void {
        this.lines.push(line.toString());
      }
      override connectionLost(): void {
        this.done.callback(undefined);
      }
    }
    const port = listenTCP(reactor, 0, Factory.forProtocol(Upper), { interface: '127.0.0.1' });
    await port.whenListening();
    const client = new Client();
    const clientFactory = new (class extends ClientFactory<Client> {
      override buildProtocol(): Client {
        return client;
      }
    })();
    connectTCP(reactor, '127.0.0.1', (port.getHost() as IPv4Address).port, clientFactory);
    try {
      await client.done;
      assert.equal(client.lines.length, 1001);
      assert.equal(client.lines[999], 'LINE 999');
      assert.equal(client.lines[1000], 'BYE');
    } finally {
      await port.stopListening();
    }
  });
});
