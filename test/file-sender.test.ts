/**
 * FileSender: a pull producer from a path, a FileHandle or a Readable into a
 * consumer; chunking, transform, completion with the last byte, read errors,
 * cancellation, the consumer stopping it; and a few MiB over real TCP,
 * compared by hash.
 */

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { FileSender, FileTransferStopped } from '../src/protocols/basic.js';
import { ClientFactory, Protocol, ServerFactory } from '../src/protocols/protocol.js';
import type { IPv4Address } from '../src/reactor/address.js';
import { Deferred } from '../src/reactor/deferred.js';
import { CancelledError, InvalidArgumentError } from '../src/reactor/errors.js';
import type { Failure } from '../src/reactor/failure.js';
import type { IConsumer, IPullProducer, IPushProducer } from '../src/reactor/interfaces.js';
import { reactor } from '../src/reactor/reactor.js';
import { connectTCP, listenTCP } from '../src/reactor/tcp.js';

const dir = mkdtempSync(join(tmpdir(), 'torsion-filesender-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
function tempFile(data: Buffer): string {
  const path = join(dir, `f${fileCounter++}`);
  writeFileSync(path, data);
  return path;
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * A pull consumer like a transport: asks at once on registration, and again
 * (on a later turn, as a flush would) after each write.
 */
class PullConsumer implements IConsumer {
  chunks: Buffer[] = [];
  producer: IPushProducer | IPullProducer | null = null;
  unregistered = 0;
  /** Extra resumeProducing calls per drain, to check they are coalesced. */
  extraAsks = 0;

  registerProducer(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    assert.equal(streaming, false);
    this.producer = producer;
    producer.resumeProducing();
  }

  unregisterProducer(): void {
    this.producer = null;
    this.unregistered++;
  }

  write(data: Uint8Array | string): void {
    this.chunks.push(Buffer.from(data));
    setImmediate(() => {
      for (let i = 0; i <= this.extraAsks; i++) this.producer?.resumeProducing();
    });
  }

  value(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

describe('FileSender into a consumer', () => {
  test('a path: CHUNK_SIZE pieces, in order, then unregister and the last byte', async () => {
    const data = randomBytes(100_000);
    const consumer = new PullConsumer();
    const sender = new FileSender();
    const last = await sender.beginFileTransfer(tempFile(data), consumer);
    assert.ok(consumer.value().equals(data));
    assert.deepEqual(
      consumer.chunks.map((c) => c.length),
      [...Array(6).fill(16384), 100_000 - 6 * 16384],
    );
    assert.equal(consumer.unregistered, 1);
    assert.deepEqual(last, data.subarray(-1));
    assert.equal(sender.deferred, null);
  });

  test('extra resumeProducing calls while a read is pending do not start more reads', async () => {
    const data = randomBytes(50_000);
    const consumer = new PullConsumer();
    consumer.extraAsks = 3;
    await new FileSender().beginFileTransfer(tempFile(data), consumer);
    assert.ok(consumer.value().equals(data));
  });

  test('an empty file fires with an empty Buffer', async () => {
    const consumer = new PullConsumer();
    const last = await new FileSender().beginFileTransfer(tempFile(Buffer.alloc(0)), consumer);
    assert.equal(last.length, 0);
    assert.equal(consumer.chunks.length, 0);
    assert.equal(consumer.unregistered, 1);
  });

  test('transform is applied to each chunk; CHUNK_SIZE can be changed', async () => {
    const consumer = new PullConsumer();
    const sender = new FileSender();
    sender.CHUNK_SIZE = 3;
    const last = await sender.beginFileTransfer(tempFile(Buffer.from('abcdefgh')), consumer, (c) =>
      c.toString().toUpperCase(),
    );
    assert.deepEqual(consumer.chunks.map(String), ['ABC', 'DEF', 'GH']);
    assert.equal(last.toString(), 'H');
  });

  test('a transform returning nothing skips the chunk without stalling', async () => {
    const consumer = new PullConsumer();
    const sender = new FileSender();
    sender.CHUNK_SIZE = 2;
    await sender.beginFileTransfer(tempFile(Buffer.from('aabbccdd')), consumer, (c) =>
      c.toString() === 'bb' || c.toString() === 'cc' ? '' : c,
    );
    assert.deepEqual(consumer.chunks.map(String), ['aa', 'dd']);
  });

  test('a FileHandle is read from its position and left open', async () => {
    const data = randomBytes(40_000);
    const handle = await open(tempFile(data), 'r');
    try {
      await handle.read(Buffer.alloc(1000), 0, 1000, null);
      const consumer = new PullConsumer();
      await new FileSender().beginFileTransfer(handle, consumer);
      assert.ok(consumer.value().equals(data.subarray(1000)));
      assert.equal((await handle.stat()).size, data.length, 'still open');
    } finally {
      await handle.close();
    }
  });

  test('a Readable of buffers and strings', async () => {
    const consumer = new PullConsumer();
    const source = Readable.from([Buffer.from('one '), 'two ', new Uint8Array([0x33])], {
      objectMode: true,
    });
    const last = await new FileSender().beginFileTransfer(source, consumer);
    assert.equal(consumer.value().toString(), 'one two 3');
    assert.equal(last.toString(), '3');
  });

  test('a byte Readable is cut into CHUNK_SIZE pieces', async () => {
    const data = randomBytes(70_000);
    const consumer = new PullConsumer();
    const source = new Readable({ read() {} });
    source.push(data.subarray(0, 50_000));
    setImmediate(() => {
      source.push(data.subarray(50_000));
      source.push(null);
    });
    await new FileSender().beginFileTransfer(source, consumer);
    assert.ok(consumer.value().equals(data));
    assert.ok(consumer.chunks.every((c) => c.length <= 16384));
  });

  test('a missing file fails the Deferred and unregisters', async () => {
    const consumer = new PullConsumer();
    const d = new FileSender().beginFileTransfer(join(dir, 'nope'), consumer);
    await assert.rejects(d.asPromise(), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    assert.equal(consumer.unregistered, 1);
  });

  test('a stream error fails the Deferred', async () => {
    const consumer = new PullConsumer();
    const source = new Readable({ read() {} });
    source.push('some');
    const d = new FileSender().beginFileTransfer(source, consumer);
    setImmediate(() => source.destroy(new Error('disk on fire')));
    await assert.rejects(d.asPromise(), /disk on fire/);
    assert.equal(consumer.unregistered, 1);
  });

  test('stopProducing by the consumer fails it with FileTransferStopped', async () => {
    const consumer = new PullConsumer();
    const sender = new FileSender();
    const d = sender.beginFileTransfer(tempFile(randomBytes(200_000)), consumer);
    const failed = d.asPromise();
    sender.stopProducing();
    await assert.rejects(failed, FileTransferStopped);
    sender.stopProducing(); // harmless twice
    assert.equal(consumer.unregistered, 0, 'a stopping consumer is not told to unregister');
    const e = new FileTransferStopped();
    assert.equal(e.message, 'Consumer asked us to stop producing');
    assert.equal(e.code, 'TORSION_ERR_FILE_TRANSFER_STOPPED');
  });

  test('cancelling the Deferred stops the transfer and unregisters', async () => {
    const consumer = new PullConsumer();
    const sender = new FileSender();
    const d = sender.beginFileTransfer(tempFile(randomBytes(200_000)), consumer);
    const failed = d.asPromise();
    d.cancel();
    await assert.rejects(failed, CancelledError);
    assert.equal(consumer.unregistered, 1);
    // The sender can be used again.
    const again = new PullConsumer();
    await sender.beginFileTransfer(tempFile(Buffer.from('x')), again);
    assert.equal(again.value().toString(), 'x');
  });

  test('bad arguments throw InvalidArgumentError', () => {
    const sender = new FileSender();
    const consumer = new PullConsumer();
    assert.throws(
      () => sender.beginFileTransfer(42 as unknown as string, consumer),
      InvalidArgumentError,
    );
    assert.throws(() => sender.beginFileTransfer('', consumer), InvalidArgumentError);
    assert.throws(
      () => sender.beginFileTransfer('x', {} as unknown as IConsumer),
      InvalidArgumentError,
    );
    sender.CHUNK_SIZE = 0;
    assert.throws(() => sender.beginFileTransfer('x', consumer), InvalidArgumentError);
  });
});

// ---------------------------------------------------------------------- real TCP

/** Collects everything until the connection closes. */
class Sink extends Protocol {
  chunks: Buffer[] = [];
  bytes = 0;
  abortAfter = Number.POSITIVE_INFINITY;
  reason: Failure | null = null;
  readonly lost = new Deferred<void>();
  override dataReceived(data: Buffer): void {
    this.chunks.push(data);
    this.bytes += data.length;
    if (this.bytes >= this.abortAfter) this.transport.abortConnection();
  }
  override connectionLost(reason: Failure): void {
    this.reason = reason;
    this.lost.callback(undefined);
  }
}

/** Sends its source over the connection, then closes; records the transfer's outcome. */
class Sender extends Protocol {
  static source: () => string | Readable = () => '';
  readonly outcome = new Deferred<Buffer | Error>();
  override connectionMade(): void {
    new FileSender().beginFileTransfer(Sender.source(), this.transport).addCallbacks(
      (last) => {
        this.outcome.callback(last);
        this.transport.loseConnection();
      },
      (f) => {
        this.outcome.callback(f.value);
      },
    );
  }
}

async function transfer(
  source: () => string | Readable,
  abortAfter = Number.POSITIVE_INFINITY,
): Promise<{ sink: Sink; sender: Sender; reason: Failure }> {
  Sender.source = source;
  let sender: Sender | null = null;
  const serverFactory = new (class extends ServerFactory<Sender> {
    override buildProtocol(): Sender {
      sender = new Sender();
      return sender;
    }
  })();
  const port = listenTCP(reactor, 0, serverFactory, { interface: '127.0.0.1' });
  await port.whenListening();
  const sink = new Sink();
  sink.abortAfter = abortAfter;
  const clientFactory = new (class extends ClientFactory<Sink> {
    override buildProtocol(): Sink {
      return sink;
    }
  })();
  connectTCP(reactor, '127.0.0.1', (port.getHost() as IPv4Address).port, clientFactory);
  try {
    await sink.lost;
    return { sink, sender: sender!, reason: sink.reason! };
  } finally {
    await port.stopListening();
  }
}

describe('FileSender over TCP', () => {
  test('a 5 MiB file arrives whole (sha256), then the sender closes', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 123);
    const path = tempFile(data);
    const { sink, sender } = await transfer(() => path);
    const received = Buffer.concat(sink.chunks);
    assert.equal(received.length, data.length);
    assert.equal(sha(received), sha(data));
    const last = await sender.outcome;
    assert.ok(Buffer.isBuffer(last));
    assert.deepEqual(last, data.subarray(-1));
  });

  test('the client going away stops the transfer: FileTransferStopped', async () => {
    // An endless source: only the consumer stopping can end it.
    const endless = (): Readable => {
      const block = Buffer.alloc(64 * 1024, 0x61);
      return new Readable({
        read() {
          this.push(block);
        },
      });
    };
    const { sink, sender } = await transfer(endless, 1024 * 1024);
    assert.ok(sink.bytes >= 1024 * 1024);
    const outcome = await sender.outcome;
    assert.ok(outcome instanceof FileTransferStopped);
  });
});
