/**
 * Where response bytes are assembled before they reach the transport: the
 * {@link ResponseCursor} a response head (and a small body) is encoded
 * into, byte by byte, with no intermediate strings.
 *
 * While a channel handles a read, the responses it produces go into the
 * one {@link OutputBatch} of the process (handling a read is synchronous,
 * so one channel at a time gathers) and leave in one write when the read is
 * handled: sixteen pipelined responses cost one syscall. The batch is a
 * scratch buffer reused for every read; what it gathered is copied out into
 * a Buffer of its own for the transport (a few hundred bytes to 16 KiB), so
 * no socket ever holds on to the scratch, however slowly its peer reads.
 *
 * Outside a read (an asynchronous response), or for a piece too big for
 * the batch, a response is encoded into a Buffer of its own
 * ({@link directCursorFor}).
 *
 * {@link ChannelOutput} is a channel's side of all this: the writes of its
 * requests, gathered or not, down to its transport, and the flow control
 * between the transport and the response's producer.
 *
 * @module
 */

import { TransportClosedError } from '../../reactor/errors.js';
import type {
  IConsumer,
  IPullProducer,
  IPushProducer,
  ITransport,
} from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import type { ResponseDate } from './response-date.js';

/** A place to encode bytes: write at `buf[pos]` onwards, then advance `pos`. */
export interface ResponseCursor {
  /** The memory, with at least the asked-for bytes free from `pos`. */
  buf: Buffer;
  /** Where the next byte goes. */
  pos: number;
}

/** Node's own Buffer methods that skip argument checks (untyped in @types/node). */
export type FastBuffer = Buffer & {
  latin1Write(s: string, offset: number, length: number): number;
  utf8Write(s: string, offset: number, length?: number): number;
};

/** Bytes of the batch's scratch buffer. */
const SCRATCH_SIZE = 64 * 1024;

/** The most a single piece may take of the batch; bigger ones are written on their own. */
export const MAX_BATCHED_PIECE = SCRATCH_SIZE / 2;

const EMPTY = Buffer.alloc(0);

/**
 * The response bytes gathered for the channel handling a read (see the
 * module documentation). The channel {@link claim}s it, writes through it as
 * a {@link ResponseCursor}, hands the gathered bytes to its transport with
 * {@link take}, and {@link release}s it when the read is handled.
 */
export class OutputBatch implements ResponseCursor {
  buf: Buffer = EMPTY;
  pos = 0;
  #owner: object | null = null;

  /** Gathers for `owner`; `false` if another owner is gathering (it then writes directly). */
  claim(owner: object): boolean {
    if (this.#owner === null) {
      if (this.buf.length === 0) this.buf = Buffer.allocUnsafe(SCRATCH_SIZE);
      this.#owner = owner;
      return true;
    }
    return this.#owner === owner;
  }

  /** Whether `owner` is the one gathering. */
  ownedBy(owner: object): boolean {
    return this.#owner === owner;
  }

  /** Ends `owner`'s gathering; what it did not take is dropped. */
  release(owner: object): void {
    if (this.#owner === owner) {
      this.#owner = null;
      this.pos = 0;
    }
  }

  /** Bytes gathered and not taken yet. */
  get pending(): number {
    return this.pos;
  }

  /**
   * Whether `n` more bytes fit at `pos`. When not, and `n` is at most
   * {@link MAX_BATCHED_PIECE}, they fit once the pending bytes are taken.
   */
  fits(n: number): boolean {
    return this.buf.length - this.pos >= n;
  }

  /** The gathered bytes, copied into a Buffer the transport may keep; the batch is empty again. */
  take(): Buffer {
    const n = this.pos;
    const out = Buffer.allocUnsafe(n);
    this.buf.copy(out, 0, 0, n);
    this.pos = 0;
    return out;
  }

  /** Drops the gathered bytes (the connection is gone). */
  discard(): void {
    this.pos = 0;
  }
}

/** The one batch of the process. */
export const batch: OutputBatch = new OutputBatch();

/** The cursor of a response encoded on its own (see {@link directCursorFor}). */
const direct: ResponseCursor = { buf: EMPTY, pos: 0 };

/** A cursor over a new Buffer of `n` bytes (pooled when small); finish with {@link takeDirect}. */
export function directCursorFor(n: number): ResponseCursor {
  direct.buf = Buffer.allocUnsafe(n);
  direct.pos = 0;
  return direct;
}

/** Whether `cursor` is the one {@link directCursorFor} gives. */
export function isDirect(cursor: ResponseCursor): boolean {
  return cursor === direct;
}

/** Takes what was encoded at the direct cursor (and lets go of its Buffer). */
export function takeDirect(): Buffer {
  const { buf, pos } = direct;
  direct.buf = EMPTY;
  direct.pos = 0;
  return pos === buf.length ? buf : buf.subarray(0, pos);
}

/**
 * Writes the decimal digits of `n` (a non-negative safe integer) at
 * `buf[pos]` and returns the new position (at most 16 bytes).
 */
export function putDecimal(buf: Buffer, pos: number, n: number): number {
  if (n < 10) {
    buf[pos] = 0x30 + n;
    return pos + 1;
  }
  let digits = 1;
  for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
  let at = pos + digits;
  for (let m = n; at > pos; m = Math.floor(m / 10)) buf[--at] = 0x30 + (m % 10);
  return pos + digits;
}

// ====================================================================== a channel's output

/** Pieces of response gathered while a read is handled before they are written anyway. */
const BATCH_LIMIT = 16 * 1024;

/** What a channel's output writes to: its transport. */
export type OutputTransport = ITransport & IConsumer;

/**
 * A channel's response output: what its requests write (heads encoded at a
 * {@link cursor}, body pieces, `100 Continue`) goes to its transport,
 * gathered in the process's {@link batch} between {@link begin} and
 * {@link end} (the channel handling a read) and written at once otherwise,
 * always in order. Small pieces are copied into the batch; pieces of
 * {@link BATCH_LIMIT} and more never are (they leave after what was
 * gathered, as they are). After {@link stop} everything is dropped.
 *
 * Flow control (as Twisted's channel does it): the channel is the
 * transport's streaming producer for the whole connection, and this relays
 * the transport's pause and resume to the response's push producer; a pull
 * producer is registered with the transport itself while it is registered
 * (the channel gives up its slot meanwhile).
 */
export class ChannelOutput {
  readonly #date: ResponseDate;
  #transport: OutputTransport | null = null;
  /** The channel, registered with the transport as its producer. */
  #channel: IPushProducer | null = null;
  /** The channel is the transport's registered producer. */
  #registered = false;
  /** The transport paused the channel (the client does not read). */
  #paused = false;
  /** The response's producer, if any. */
  #producer: IPushProducer | IPullProducer | null = null;
  #streaming = false;
  #open = true;
  #batching = false;
  /** The Date and Server fields read for the responses of the current read. */
  #feedDate: Buffer | null = null;
  /** The clock was read for the responses of the current read. */
  #feedFresh = false;

  constructor(date: ResponseDate) {
    this.#date = date;
  }

  /**
   * The channel is connected: the bytes go to `transport` from now on, and
   * `channel` becomes its streaming producer (it may be paused at once).
   */
  attach(transport: OutputTransport, channel: IPushProducer): void {
    this.#transport = transport;
    this.#channel = channel;
    this.#registered = true;
    transport.registerProducer(channel, true);
  }

  // ------------------------------------------------------------------ flow control

  /** Whether the transport has paused the channel (the client does not read our responses). */
  get paused(): boolean {
    return this.#paused;
  }

  /**
   * The transport paused the channel: the response's push producer is
   * paused too. Returns `false` if it was paused already.
   */
  pause(): boolean {
    if (this.#paused) return false;
    this.#paused = true;
    const producer = this.#producer;
    if (producer !== null && this.#streaming) {
      try {
        (producer as IPushProducer).pauseProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.pauseProducing()');
      }
    }
    return true;
  }

  /**
   * The transport resumed the channel: the response's push producer is
   * resumed too. Returns whether the output still flows afterwards (the
   * producer's writes may have paused it again); `false` also when it was
   * not paused.
   */
  resume(): boolean {
    if (!this.#paused) return false;
    this.#paused = false;
    const producer = this.#producer;
    if (producer !== null && this.#streaming) {
      try {
        (producer as IPushProducer).resumeProducing();
      } catch (e) {
        err(e, 'Unhandled error in producer.resumeProducing()');
      }
    }
    return !this.#paused;
  }

  /** The transport let go of the channel (it is closing or detached). */
  released(): void {
    this.#registered = false;
  }

  /**
   * The response in progress registered `producer`. A push producer is
   * paused at once if the output is; a pull producer takes the channel's
   * place with the transport (which then asks it for more on each drain).
   */
  producerRegistered(producer: IPushProducer | IPullProducer, streaming: boolean): void {
    this.#producer = producer;
    this.#streaming = streaming;
    if (!this.#open) return;
    if (streaming) {
      if (this.#paused) (producer as IPushProducer).pauseProducing();
      return;
    }
    this.flush();
    const transport = this.#transport!;
    if (this.#registered) {
      this.#registered = false;
      transport.unregisterProducer();
    }
    transport.registerProducer(producer, false);
  }

  /**
   * The response unregistered `producer`: a pull producer gives the
   * transport back to the channel. Returns `true` when the channel took the
   * transport back and the output flows (the channel may read again);
   * `false` otherwise (nothing changed, or the transport paused it at once).
   */
  producerUnregistered(producer: IPushProducer | IPullProducer, streaming: boolean): boolean {
    if (this.#producer !== producer) return false;
    this.#producer = null;
    if (streaming || !this.#open) return false;
    this.flush();
    const transport = this.#transport!;
    transport.unregisterProducer();
    this.#paused = false;
    this.#registered = true;
    transport.registerProducer(this.#channel!, true); // may pause the channel at once
    return !this.#paused;
  }

  /**
   * Unregisters the channel from the transport, if it is registered; with
   * `pull`, a registered pull producer otherwise (to close: the transport
   * must not wait for it). Without it, a pull producer stays registered (a
   * detach stops it).
   */
  unregister(pull: boolean): void {
    const transport = this.#transport;
    if (transport === null) return;
    if (this.#registered) {
      this.#registered = false;
      transport.unregisterProducer();
    } else if (pull && this.#producer !== null && !this.#streaming) {
      transport.unregisterProducer();
    }
  }

  /**
   * The connection is lost: forgets the response's producer. Returns
   * whether it was a pull producer registered with the transport (which
   * has stopped it already).
   */
  forgetProducer(): boolean {
    const stopped = this.#producer !== null && !this.#streaming;
    this.#producer = null;
    return stopped;
  }

  // ------------------------------------------------------------------ writing

  /** Whether writes are gathered now. */
  get batching(): boolean {
    return this.#batching;
  }

  /**
   * Starts gathering (the channel is handling a read); returns whether this
   * call started it (`false` when already gathering): pass it to {@link end}.
   */
  begin(): boolean {
    if (this.#batching) return false;
    this.#batching = true;
    return true;
  }

  /** Ends the gathering {@link begin} started (`started`): what was gathered is written. */
  end(started: boolean): void {
    if (!started) return;
    this.#batching = false;
    this.#feedDate = null;
    this.#feedFresh = false;
    this.flush();
    batch.release(this);
  }

  /** Writes nothing more: what is gathered is dropped (the connection is closing or gone). */
  stop(): void {
    this.#open = false;
    if (batch.ownedBy(this)) batch.release(this);
  }

  /**
   * Writes response bytes (strings must be ASCII or meant as UTF-8):
   * gathered while {@link batching} (pieces under {@link BATCH_LIMIT},
   * copied), else written at once (big pieces are never copied).
   */
  write(data: Uint8Array | string): void {
    if (!this.#open) return;
    const n = data.length;
    if (this.#batching && n < BATCH_LIMIT && batch.claim(this)) {
      if (typeof data === 'string') {
        const max = n * 3; // UTF-8 bytes at most
        if (!batch.fits(max)) this.flush();
        batch.pos += (batch.buf as FastBuffer).utf8Write(data, batch.pos);
      } else {
        if (!batch.fits(n)) this.flush();
        batch.buf.set(data, batch.pos);
        batch.pos += n;
      }
      if (batch.pending >= BATCH_LIMIT) this.flush();
      return;
    }
    this.flush(); // what was gathered goes first
    this.#send(data);
  }

  /**
   * Room for `max` bytes of response: encode them at
   * `cursor.buf[cursor.pos…]`, advance `cursor.pos`, then call
   * {@link written} before anything else is written. The batch while
   * gathering (for pieces up to {@link MAX_BATCHED_PIECE}), else a Buffer of
   * the response's own.
   */
  cursor(max: number): ResponseCursor {
    if (this.#batching && max <= MAX_BATCHED_PIECE && this.#open && batch.claim(this)) {
      if (!batch.fits(max)) this.flush();
      return batch;
    }
    return directCursorFor(max);
  }

  /** The bytes encoded at a {@link cursor} are complete. */
  written(cursor: ResponseCursor): void {
    if (!isDirect(cursor)) {
      if (batch.pending >= BATCH_LIMIT) this.flush();
      return;
    }
    const bytes = takeDirect();
    if (!this.#open) return;
    this.flush();
    this.#send(bytes);
  }

  /** Writes `pieces` in order without copying them, after what was gathered (one `writeSequence`). */
  pieces(pieces: (Uint8Array | string)[]): void {
    if (!this.#open) return;
    this.flush();
    const transport = this.#transport;
    if (transport === null) return;
    try {
      transport.writeSequence(pieces);
    } catch (e) {
      if (!(e instanceof TransportClosedError)) throw e;
    }
  }

  /** Hands what was gathered to the transport (one write). */
  flush(): void {
    if (!batch.ownedBy(this) || batch.pending === 0) return;
    if (!this.#open) {
      batch.discard();
      return;
    }
    this.#send(batch.take());
  }

  /**
   * `"Date: …\r\nServer: torsion\r\n"` as shared bytes, cached per second;
   * while gathering, read once for all the responses of the read (sparing a
   * clock read per pipelined response).
   */
  dateServerBytes(): Buffer {
    if (!this.#batching) return this.#date.fieldBytes();
    this.#feedDate ??= this.#date.fieldBytes();
    return this.#feedDate;
  }

  /** The status line of `code` (registered phrase) with the `Date` and `Server` fields, shared. */
  headStart(code: number): Buffer {
    if (!this.#batching) return this.#date.headStart(code, false);
    const start = this.#date.headStart(code, this.#feedFresh);
    this.#feedFresh = true;
    return start;
  }

  /** The current `Date` value. */
  dateValue(): string {
    return this.#date.value();
  }

  /** `transport.write`, ignoring a transport that closed meanwhile. */
  #send(data: Uint8Array | string): void {
    const transport = this.#transport;
    if (transport === null) return;
    try {
      transport.write(data);
    } catch (e) {
      if (!(e instanceof TransportClosedError)) throw e;
    }
  }
}
