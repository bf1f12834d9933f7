/**
 * {@link FileSender}: a pull producer that copies a file, or any readable
 * stream, into a consumer (a transport, an HTTP request), as Twisted's
 * `twisted.protocols.basic.FileSender`.
 *
 * @module
 */

import { close, open, read } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Deferred } from '../reactor/deferred.js';
import { InvalidArgumentError, TorsionError } from '../reactor/errors.js';
import type { IConsumer, IPullProducer } from '../reactor/interfaces.js';
import { err } from '../reactor/log.js';
import { EMPTY, toBuffer } from './receiver.js';

/** What {@link FileSender.beginFileTransfer} reads: a path, an open `FileHandle`, or a `Readable`. */
export type FileSource = string | FileHandle | Readable;

/** The consumer stopped the transfer (`stopProducing()`), e.g. because its connection closed. */
export class FileTransferStopped extends TorsionError {
  constructor(message = 'Consumer asked us to stop producing') {
    super(message, 'TORSION_ERR_FILE_TRANSFER_STOPPED');
  }
}

const IDLE = 0;
const OPENING = 1;
const READING = 2;
const DONE = 3;

function isFileHandle(value: unknown): value is FileHandle {
  const v = value as Partial<FileHandle> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.fd === 'number' &&
    typeof v.close === 'function' &&
    typeof v.read === 'function'
  );
}

function isConsumer(value: unknown): value is IConsumer {
  const v = value as Partial<IConsumer> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.registerProducer === 'function' &&
    typeof v.unregisterProducer === 'function' &&
    typeof v.write === 'function'
  );
}

/** What a {@link Transfer} tells the FileSender that started it. */
interface TransferOwner {
  readonly chunkSize: number;
  sent(lastByte: Buffer): void;
  ended(transfer: Transfer): void;
}

/** One transfer's state; a FileSender makes a new one per `beginFileTransfer`. */
class Transfer {
  state = IDLE;
  consumer: IConsumer | null;
  readonly deferred: Deferred<Buffer>;
  lastSent: Buffer = EMPTY;
  readonly #owner: TransferOwner;
  readonly #chunkSize: number;
  readonly #transform: ((chunk: Buffer) => Uint8Array | string) | null;
  #fd = -1;
  readonly #ownsFd: boolean;
  readonly #handle: FileHandle | null;
  #stream: Readable | null;
  /** The consumer asked for a chunk not yet written. */
  #wanted = false;
  /** A read is in flight. */
  #reading = false;
  /** A stream read found nothing: the next 'readable' or 'end' continues. */
  #waiting = false;

  // One set of callbacks per transfer (not per chunk); a late callback of an
  // ended transfer can then never touch the next one.
  readonly #onOpen = (error: NodeJS.ErrnoException | null, fd: number): void => {
    if (this.state !== OPENING) {
      if (!error) close(fd, ignoreError);
      return;
    }
    if (error) {
      this.fail(error);
      return;
    }
    this.#fd = fd;
    this.state = READING;
    this.#pump();
  };

  readonly #onRead = (
    error: NodeJS.ErrnoException | null,
    bytesRead: number,
    buffer: Buffer,
  ): void => {
    this.#reading = false;
    if (this.state !== READING) {
      this.#release();
      return;
    }
    if (error) {
      this.fail(error);
      return;
    }
    if (bytesRead === 0) {
      this.#end(this.lastSent, null);
      return;
    }
    if (!this.#send(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead))) {
      this.#wanted = true;
    }
    this.#pump();
  };

  readonly #onReadable = (): void => {
    if (this.#waiting) {
      this.#waiting = false;
      this.#readStream();
    }
  };

  readonly #onEnd = (): void => {
    if (this.#waiting) {
      this.#waiting = false;
      this.#end(this.lastSent, null);
    }
  };

  readonly #onError = (error: Error): void => {
    this.fail(error);
  };

  constructor(
    owner: TransferOwner,
    file: FileSource,
    consumer: IConsumer,
    transform: ((chunk: Buffer) => Uint8Array | string) | null,
  ) {
    this.#owner = owner;
    this.#chunkSize = owner.chunkSize;
    this.consumer = consumer;
    this.#transform = transform;
    this.deferred = new Deferred<Buffer>(() => this.cancel());
    this.#handle = null;
    this.#stream = null;
    this.#ownsFd = typeof file === 'string';
    if (typeof file === 'string') {
      this.state = OPENING;
      open(file, 'r', this.#onOpen);
    } else if (file instanceof Readable) {
      this.state = READING;
      this.#stream = file;
      file.on('readable', this.#onReadable);
      file.on('end', this.#onEnd);
      file.on('error', this.#onError);
    } else {
      this.state = READING;
      this.#handle = file as FileHandle;
    }
  }

  get active(): boolean {
    return this.state !== DONE;
  }

  resume(): void {
    if (this.state === DONE) return;
    this.#wanted = true;
    this.#pump();
  }

  stop(): void {
    if (this.state === DONE) return;
    this.#end(null, new FileTransferStopped());
  }

  fail(error: unknown): void {
    if (this.state === DONE) return;
    this.#end(null, error);
  }

  /** Registration failed: drop everything without firing. */
  abandon(): void {
    this.state = DONE;
    this.consumer = null;
    this.#release();
  }

  cancel(): void {
    if (this.state === DONE) return;
    const consumer = this.consumer;
    this.abandon();
    this.#detach();
    unregister(consumer);
  }

  #pump(): void {
    if (this.state !== READING || !this.#wanted || this.#reading || this.#waiting) return;
    this.#wanted = false;
    if (this.#stream !== null) {
      this.#readStream();
      return;
    }
    this.#reading = true;
    const buffer = Buffer.allocUnsafe(this.#chunkSize);
    // A FileHandle is read through its descriptor (kept referenced, so not
    // closed by the GC meanwhile); the caller keeps ownership of it.
    const fd = this.#handle !== null ? this.#handle.fd : this.#fd;
    read(fd, buffer, 0, buffer.length, null, this.#onRead);
  }

  /** Writes the next stream chunk, or waits for one ('readable'/'end'). */
  #readStream(): void {
    const stream = this.#stream!;
    while (this.state === READING) {
      const available = stream.readableLength;
      const chunk: unknown =
        available > 0 && !stream.readableObjectMode
          ? stream.read(Math.min(available, this.#chunkSize))
          : stream.read();
      if (chunk === null) {
        if (stream.readableEnded) this.#end(this.lastSent, null);
        else this.#waiting = true;
        return;
      }
      if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
        this.fail(new InvalidArgumentError('FileSender: the stream produced a non-bytes chunk'));
        return;
      }
      if (this.#send(toBuffer(chunk))) return;
    }
  }

  /** Transforms and writes `chunk`; returns whether any byte was written (or it failed). */
  #send(chunk: Buffer): boolean {
    let out = chunk;
    try {
      if (this.#transform !== null) out = toBuffer(this.#transform(chunk));
      // An empty write would never drain, so the consumer would never ask again.
      if (out.length === 0) return false;
      this.consumer!.write(out);
    } catch (e) {
      this.fail(e);
      return true;
    }
    this.lastSent = Buffer.from(out.subarray(out.length - 1));
    this.#owner.sent(this.lastSent);
    return true;
  }

  /** Ends the transfer once: releases the file, unregisters (unless stopped), fires. */
  #end(result: Buffer | null, error: unknown): void {
    const consumer = this.consumer;
    this.state = DONE;
    this.consumer = null;
    this.#release();
    this.#detach();
    if (!(error instanceof FileTransferStopped)) unregister(consumer);
    if (error === null) this.deferred.callback(result!);
    else this.deferred.errback(error);
  }

  /** The sender forgets this transfer (it may start another). */
  #detach(): void {
    this.#owner.ended(this);
  }

  /** Lets go of the file: closes a descriptor we opened (after any read in flight). */
  #release(): void {
    const stream = this.#stream;
    if (stream !== null) {
      this.#stream = null;
      stream.off('readable', this.#onReadable);
      stream.off('end', this.#onEnd);
      stream.off('error', this.#onError);
    }
    if (this.#reading) return; // #onRead calls back here once the read is over
    const fd = this.#fd;
    this.#fd = -1;
    if (fd !== -1 && this.#ownsFd) close(fd, ignoreError);
  }
}

/**
 * Sends a file's bytes to a consumer, one chunk of
 * {@link FileSender.CHUNK_SIZE} bytes per `resumeProducing()`.
 *
 * `beginFileTransfer` registers the sender with the consumer as a pull
 * producer (`streaming = false`); the consumer then asks for a chunk at once
 * and again each time its buffer drains (a TCP transport: once per flush).
 * Reads are asynchronous: the chunk is written when the read completes, and
 * further `resumeProducing()` calls while a read is pending ask for one more
 * chunk after it, never for several. After the last chunk the sender
 * unregisters and the Deferred fires with the last byte written (a 1-byte
 * Buffer; empty for an empty file).
 *
 * The Deferred fails with the read error (the sender unregisters first), with
 * {@link FileTransferStopped} when the consumer calls `stopProducing()` (its
 * connection closed), or with `CancelledError` when cancelled (the sender
 * unregisters). A file opened from a path is closed in every case; a
 * `FileHandle` or stream given by the caller is left open: the caller owns it
 * (and must listen for a stream's later `'error'`s). Once a transfer has
 * ended, the same sender may begin another.
 *
 * ```ts
 * new FileSender().beginFileTransfer('/var/data.bin', this.transport)
 *   .addCallback(() => this.transport.loseConnection());
 * ```
 */
export class FileSender implements IPullProducer {
  /** Bytes read per chunk (default 2^14, as Twisted); read when a transfer begins. */
  CHUNK_SIZE = 2 ** 14;

  /** The last byte written so far (empty before the first chunk). */
  lastSent: Buffer = EMPTY;

  #transfer: Transfer | null = null;

  /** The running transfer's Deferred, `null` when no transfer is running. */
  get deferred(): Deferred<Buffer> | null {
    return this.#transfer?.deferred ?? null;
  }

  /**
   * Starts sending `file` to `consumer` (see the class documentation).
   *
   * @param file - a path (opened read-only, closed at the end), an open
   *   `FileHandle` (read from its current position), or a `Readable`
   *   (bytes, strings or Uint8Array chunks).
   * @param consumer - where the bytes go; the sender registers with it.
   * @param transform - applied to each chunk before it is written; a chunk
   *   it turns into nothing is skipped.
   * @returns a Deferred firing with the last byte written.
   * @throws InvalidArgumentError for a bad `file`, `consumer`, `transform` or
   *   `CHUNK_SIZE`, or while a transfer is running.
   * @throws ProducerAlreadyRegistered (from the consumer) if it already has a producer.
   */
  beginFileTransfer(
    file: FileSource,
    consumer: IConsumer,
    transform?: (chunk: Buffer) => Uint8Array | string,
  ): Deferred<Buffer> {
    if (this.#transfer !== null) {
      throw new InvalidArgumentError('FileSender: a transfer is already running');
    }
    if (!isConsumer(consumer)) throw new InvalidArgumentError('FileSender: not a consumer');
    if (transform !== undefined && typeof transform !== 'function') {
      throw new InvalidArgumentError('FileSender: transform must be a function');
    }
    if (!(Number.isInteger(this.CHUNK_SIZE) && this.CHUNK_SIZE > 0)) {
      throw new InvalidArgumentError(`FileSender: bad CHUNK_SIZE ${this.CHUNK_SIZE}`);
    }
    if (
      typeof file === 'string'
        ? file.length === 0
        : !(file instanceof Readable || isFileHandle(file))
    ) {
      throw new InvalidArgumentError('FileSender: file must be a path, a FileHandle or a Readable');
    }
    this.lastSent = EMPTY;
    const owner: TransferOwner = {
      chunkSize: this.CHUNK_SIZE,
      sent: (lastByte) => {
        this.lastSent = lastByte;
      },
      ended: (t) => {
        if (this.#transfer === t) this.#transfer = null;
      },
    };
    const transfer = new Transfer(owner, file, consumer, transform ?? null);
    this.#transfer = transfer;
    try {
      consumer.registerProducer(this, false);
    } catch (e) {
      transfer.abandon();
      this.#transfer = null;
      throw e;
    }
    return transfer.deferred;
  }

  /** The consumer wants a chunk: one is read and written (asynchronously). */
  resumeProducing(): void {
    this.#transfer?.resume();
  }

  /** Does nothing: a pull producer is never paused (Twisted likewise). */
  pauseProducing(): void {}

  /**
   * The consumer will take no more: the transfer ends and the Deferred fails
   * with {@link FileTransferStopped}. Does nothing when no transfer runs.
   */
  stopProducing(): void {
    this.#transfer?.stop();
  }
}

function unregister(consumer: IConsumer | null): void {
  if (consumer === null) return;
  try {
    consumer.unregisterProducer();
  } catch (e) {
    err(e, 'Unhandled error in consumer.unregisterProducer()');
  }
}

function ignoreError(): void {}
