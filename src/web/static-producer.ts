/**
 * {@link FileBodyProducer}: streams parts of an open file (and the literal
 * bytes between them, for `multipart/byteranges`) into a request, under the
 * request's flow control, and closes the file exactly once whatever ends the
 * transfer.
 *
 * @module
 */

import { closeSync, read } from 'node:fs';
import { TorsionError } from '../reactor/errors.js';
import type { Failure } from '../reactor/failure.js';
import type { IPushProducer } from '../reactor/interfaces.js';
import { err } from '../reactor/log.js';
import type { IRequest } from './iweb.js';

/**
 * One piece of a response body: `head` (if not `null`) is written first,
 * then `length` bytes of the file from `offset`.
 */
export interface BodySegment {
  readonly head: Buffer | null;
  readonly offset: number;
  readonly length: number;
}

/**
 * The file ended before the bytes promised in `Content-Length` were read: it
 * shrank while being sent. The response cannot be completed.
 */
export class FileTruncatedError extends TorsionError {
  constructor(message: string) {
    super(message, 'TORSION_ERR_STATIC_FILE_TRUNCATED');
  }
}

/** Default bytes per read: one read in flight, so this bounds the producer's own buffering. */
export const DEFAULT_CHUNK_SIZE = 64 * 1024;

/** How a transfer ended, as told to {@link FileBodyProducerOptions.onEnd}. */
export const TRANSFER_COMPLETED = 0;
/** The consumer stopped the transfer (the client went away). */
export const TRANSFER_STOPPED = 1;
/** Reading the file failed or the file shrank. */
export const TRANSFER_FAILED = 2;

/** Options of {@link FileBodyProducer}. */
export interface FileBodyProducerOptions {
  /** Bytes per read (default {@link DEFAULT_CHUNK_SIZE}). */
  chunkSize?: number;
  /**
   * Called once, after the file is closed: {@link TRANSFER_COMPLETED},
   * {@link TRANSFER_STOPPED} or {@link TRANSFER_FAILED} (with the error).
   * Exceptions it throws are logged.
   */
  onEnd?: (how: number, error: Error | null) => void;
}

/**
 * A push producer that writes `segments` of the open file descriptor `fd`
 * to `request` and then unregisters and finishes it. It owns `fd` from the
 * constructor on and closes it exactly once: after the last byte, on
 * `stopProducing()` (the request's connection went away, or
 * `notifyFinish()` failed), or on a read error. A close is never issued
 * while a read of the same descriptor is in flight (the number could be
 * reused by another open and the read land in the wrong file): it waits for
 * that read to return.
 *
 * Memory: one read of at most `chunkSize` bytes in flight; each chunk is a
 * fresh Buffer handed to `request.write` (the consumer may keep it queued,
 * so buffers are never reused). While paused no read is issued, so the
 * producer holds at most one chunk beyond what the consumer has accepted.
 *
 * If the file fails or shrinks mid-body, the response cannot honour its
 * `Content-Length`: the producer unregisters and never finishes the request,
 * and the error is logged; the connection must be closed by its owner
 * (`onEnd`). Reentrancy: `request.write` may call `pauseProducing` or
 * `stopProducing` synchronously; both are honoured before the next read.
 */
export class FileBodyProducer implements IPushProducer {
  readonly #request: IRequest;
  readonly #segments: readonly BodySegment[];
  readonly #chunkSize: number;
  readonly #onEnd: ((how: number, error: Error | null) => void) | null;
  #fd: number;
  #index = 0;
  #headPending = true;
  #position = 0;
  #remaining = 0;
  #paused = false;
  #reading = false;
  #ended = false;
  #pumping = false;
  #sent = 0;

  // One bound callback per transfer, not one per chunk.
  readonly #onRead = (
    error: NodeJS.ErrnoException | null,
    bytesRead: number,
    buffer: Buffer,
  ): void => {
    this.#reading = false;
    if (this.#ended) {
      // Stopped while the read was in flight: the close was left to us.
      this.#close();
      this.#report(TRANSFER_STOPPED, null);
      return;
    }
    if (error !== null) {
      this.#fail(error);
      return;
    }
    if (bytesRead === 0) {
      this.#fail(
        new FileTruncatedError(
          `file ended ${this.#remaining} bytes early at offset ${this.#position}`,
        ),
      );
      return;
    }
    this.#position += bytesRead;
    this.#remaining -= bytesRead;
    this.#sent += bytesRead;
    this.#request.write(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
    this.#pump();
  };

  readonly #onLost = (_reason: Failure): void => {
    this.stopProducing();
  };

  /**
   * @param fd - an open, readable file descriptor; owned (closed) by the producer.
   * @param request - the request to write to; its head (status, headers,
   *   `Content-Length` = the sum of heads and lengths) must be set.
   */
  constructor(
    fd: number,
    request: IRequest,
    segments: readonly BodySegment[],
    options: FileBodyProducerOptions = {},
  ) {
    this.#fd = fd;
    this.#request = request;
    this.#segments = segments;
    this.#chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.#onEnd = options.onEnd ?? null;
  }

  /** File bytes handed to the request so far. */
  get bytesSent(): number {
    return this.#sent;
  }

  /** Whether the transfer is over (completed, stopped or failed). */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Registers with the request as a streaming producer, watches
   * `notifyFinish()` for a lost connection, and starts reading. Call once.
   * @throws what `registerProducer` throws (e.g. `ProducerAlreadyRegistered`);
   *   the file is closed first.
   */
  start(): void {
    const request = this.#request;
    request.notifyFinish().addErrback(this.#onLost);
    if (this.#ended) return;
    try {
      request.registerProducer(this, true);
    } catch (error) {
      // Not registered: nobody would ever stop us, so the file closes now.
      this.#ended = true;
      this.#close();
      throw error;
    }
    if (this.#ended) return;
    this.#enterSegment();
    this.#pump();
  }

  pauseProducing(): void {
    this.#paused = true;
  }

  resumeProducing(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#pump();
  }

  /** Ends the transfer now; the file is closed (after a read in flight returns). Idempotent. */
  stopProducing(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#reading) return;
    this.#close();
    this.#report(TRANSFER_STOPPED, null);
  }

  #enterSegment(): void {
    const seg = this.#segments[this.#index];
    if (seg === undefined) return;
    this.#headPending = seg.head !== null;
    this.#position = seg.offset;
    this.#remaining = seg.length;
  }

  /** Writes heads and issues the next read until paused, ended, or a read is in flight. */
  #pump(): void {
    // A write may resume us synchronously (a consumer draining at once):
    // that call only clears the flag and this loop carries on.
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#ended && !this.#paused && !this.#reading) {
        const seg = this.#segments[this.#index];
        if (seg === undefined) {
          this.#complete();
          return;
        }
        if (this.#headPending) {
          this.#headPending = false;
          this.#request.write(seg.head!);
          continue;
        }
        if (this.#remaining === 0) {
          this.#index++;
          this.#enterSegment();
          continue;
        }
        const n = Math.min(this.#remaining, this.#chunkSize);
        this.#reading = true;
        read(this.#fd, Buffer.allocUnsafe(n), 0, n, this.#position, this.#onRead);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #complete(): void {
    this.#ended = true;
    this.#close();
    const request = this.#request;
    request.unregisterProducer();
    request.finish();
    this.#report(TRANSFER_COMPLETED, null);
  }

  #fail(error: Error): void {
    this.#ended = true;
    this.#close();
    this.#request.unregisterProducer();
    err(error, 'Static file transfer failed');
    this.#report(TRANSFER_FAILED, error);
  }

  #close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    try {
      // closeSync: a regular file opened for reading closes without I/O,
      // and a synchronous close frees the descriptor before anything else
      // can run (tests count descriptors).
      closeSync(fd);
    } catch (error) {
      err(error, 'Closing a static file failed');
    }
  }

  #report(how: number, error: Error | null): void {
    const onEnd = this.#onEnd;
    if (onEnd === null) return;
    try {
      onEnd(how, error);
    } catch (e) {
      err(e, 'FileBodyProducer onEnd callback failed');
    }
  }
}
