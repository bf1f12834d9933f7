/**
 * AMP boxes and their framing: {@link AmpBox} (a map of byte-string keys to
 * byte values), its wire encoding, the incremental {@link BoxParser}, and
 * {@link BinaryBoxProtocol}, the Protocol that turns a byte stream into boxes
 * for an {@link IBoxReceiver} (Twisted's `BinaryBoxProtocol`).
 *
 * Wire format, as Twisted writes it: each key and each value is a 2-byte
 * big-endian length followed by that many bytes; a key is 1–255 bytes, a
 * value 0–65,535 bytes; an empty key (`00 00`) ends the box. Keys are written
 * in sorted (bytewise) order.
 *
 * Keys are byte strings. torsion holds them as JavaScript strings with one
 * character per byte (latin1), so any key read off the wire round-trips
 * exactly; AMP's own keys and commands are ASCII.
 *
 * @module
 */

import { ConnectionLost, InvalidArgumentError } from '../../reactor/errors.js';
import { Failure } from '../../reactor/failure.js';
import type {
  ITLSTransport,
  ITransport,
  StartTLSOptions,
  TLSServerContextOptions,
} from '../../reactor/interfaces.js';
import { err } from '../../reactor/log.js';
import { Protocol } from '../protocol.js';
import { MalformedAmpBox, OnlyOneTLS, TLSNotAvailable, TooLong } from './errors.js';

/** The longest key, in bytes. */
export const MAX_KEY_LENGTH = 0xff;
/** The longest value, in bytes. */
export const MAX_VALUE_LENGTH = 0xffff;

const NOT_LATIN1 = /[\u0100-\uffff]/;

// ====================================================================== AmpBox

/**
 * One AMP box: keys (byte strings, one character per byte) to values
 * (bytes). A `Map`, so insertion order is kept in memory; on the wire the keys
 * are sorted, as Twisted's `AmpBox.serialize`.
 */
export class AmpBox extends Map<string, Buffer> {
  /**
   * A box from a plain record; string values are encoded as UTF-8.
   * @throws InvalidArgumentError for a value that is neither string nor bytes.
   */
  static of(entries: Readonly<Record<string, string | Uint8Array>>): AmpBox {
    const box = new AmpBox();
    for (const key of Object.keys(entries)) {
      const value = entries[key];
      if (typeof value === 'string') box.set(key, Buffer.from(value, 'utf8'));
      else if (value instanceof Uint8Array) box.set(key, toBuffer(value));
      else throw new InvalidArgumentError(`AmpBox value for ${JSON.stringify(key)} must be bytes`);
    }
    return box;
  }

  /**
   * Parses a whole byte string of boxes (Twisted's `amp.parseString`), e.g.
   * the value of an `AmpList`. Empty boxes are allowed here.
   * @throws MalformedAmpBox if the bytes end inside a box.
   * @throws TooLong if a key length is over 255.
   */
  static parseAll(data: Uint8Array): AmpBox[] {
    const parser = new BoxParser();
    parser.push(toBuffer(data));
    const boxes: AmpBox[] = [];
    for (let box = parser.next(); box !== null; box = parser.next()) boxes.push(box);
    if (parser.bufferedBytes > 0 || parser.inBox) {
      throw new MalformedAmpBox('AMP data ends inside a box');
    }
    return boxes;
  }

  /** The value of `key` decoded as UTF-8, or `undefined`. */
  getString(key: string): string | undefined {
    return this.get(key)?.toString('utf8');
  }

  /**
   * The wire encoding: keys in bytewise order, each key and value with its
   * 2-byte length, then `00 00`.
   * @throws TooLong for a key over 255 bytes or a value over 65,535 bytes.
   * @throws InvalidArgumentError for an empty key or a key with a character
   *   above U+00FF (keys are byte strings).
   */
  serialize(): Buffer {
    // Default sort compares UTF-16 code units: for latin1 strings that is the
    // bytewise order Twisted's sorted() gives.
    const keys = Array.from(this.keys()).sort();
    let total = 2;
    for (const key of keys) {
      const value = this.get(key) as Buffer;
      if (key.length === 0) throw new InvalidArgumentError('AMP keys cannot be empty');
      if (key.length > MAX_KEY_LENGTH) throw new TooLong(true, true, key.length);
      if (NOT_LATIN1.test(key)) {
        throw new InvalidArgumentError(`AMP key ${JSON.stringify(key)} is not a byte string`);
      }
      if (value.length > MAX_VALUE_LENGTH) throw new TooLong(false, true, value.length, key);
      total += 4 + key.length + value.length;
    }
    const out = Buffer.allocUnsafe(total);
    let offset = 0;
    for (const key of keys) {
      const value = this.get(key) as Buffer;
      out.writeUInt16BE(key.length, offset);
      out.write(key, offset + 2, 'latin1');
      offset += 2 + key.length;
      out.writeUInt16BE(value.length, offset);
      out.set(value, offset + 2);
      offset += 2 + value.length;
    }
    out.writeUInt16BE(0, offset);
    return out;
  }

  override toString(): string {
    const parts: string[] = [];
    for (const [key, value] of this)
      parts.push(`${JSON.stringify(key)}: ${pythonBytesRepr(value)}`);
    return `AmpBox({${parts.join(', ')}})`;
  }
}

/**
 * A box after which the sender closes the connection (once it is written),
 * as Twisted's `QuitBox`: used for `UNKNOWN` and fatal error answers.
 */
export class QuitBox extends AmpBox {}

/** TLS options of the answering (server) side of `StartTLS`. */
export type ServerTLSOptions = TLSServerContextOptions & { readonly handshakeTimeout?: number };

/**
 * The answer to `StartTLS` (Twisted's `_TLSBox`): once it is written, the
 * sender switches its transport to TLS, as the server side, with
 * `tlsOptions` (which stay local: they are not in the box).
 */
export class TLSBox extends AmpBox {
  /** The server-side `node:tls` options (`key`, `cert`, …). */
  readonly tlsOptions: ServerTLSOptions;

  constructor(tlsOptions: ServerTLSOptions) {
    super();
    this.tlsOptions = tlsOptions;
  }
}

/** Whether `transport` can switch to TLS (it has `startTLS`, as torsion's TCP transports). */
export function canStartTLS(transport: ITransport | undefined): transport is ITLSTransport {
  return (
    transport !== undefined && typeof (transport as Partial<ITLSTransport>).startTLS === 'function'
  );
}

/** Where a connection is with TLS: see {@link BinaryBoxProtocol.tlsState}. */
export type AmpTLSState = 'none' | 'pending' | 'started';

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Python's `repr()` of a byte string (`b'Sum'`), used where Twisted puts one
 * in a description that goes on the wire (`Unhandled Command: b'Foo'`).
 */
export function pythonBytesRepr(data: Uint8Array | string): string {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  const quote = bytes.includes(0x27) && !bytes.includes(0x22) ? '"' : "'";
  let out = `b${quote}`;
  for (const byte of bytes) {
    if (byte === 0x5c) out += '\\\\';
    else if (byte === 0x09) out += '\\t';
    else if (byte === 0x0a) out += '\\n';
    else if (byte === 0x0d) out += '\\r';
    else if (byte === quote.charCodeAt(0)) out += `\\${quote}`;
    else if (byte < 0x20 || byte >= 0x7f) out += `\\x${byte.toString(16).padStart(2, '0')}`;
    else out += String.fromCharCode(byte);
  }
  return `${out}${quote}`;
}

// ====================================================================== BoxParser

const KEY_LENGTH = 0;
const KEY = 1;
const VALUE_LENGTH = 2;
const VALUE = 3;

/**
 * Incremental box parser: `push` bytes as they come, then call `next()` until
 * it returns `null` (more bytes needed). Values are views over the pushed
 * buffers where a value lies within one of them; bytes are copied only for a
 * key or value split across pushes. Buffered bytes are kept as a list, so
 * input fed in any split costs linear time.
 */
export class BoxParser {
  #chunks: Buffer[] = [];
  #offset = 0;
  #buffered = 0;
  #state = KEY_LENGTH;
  #need = 2;
  #key = '';
  #box: AmpBox | null = null;

  /** Bytes pushed and not yet parsed. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** `true` while a box has started (at least one key) but not ended. */
  get inBox(): boolean {
    return this.#box !== null || this.#state !== KEY_LENGTH;
  }

  /** Adds bytes to parse. The buffer must not be modified afterwards. */
  push(data: Buffer): void {
    if (data.length === 0) return;
    this.#chunks.push(data);
    this.#buffered += data.length;
  }

  /**
   * Removes and returns all bytes not parsed yet (for handing the stream on
   * to another protocol), and resets the parser.
   */
  takeRemaining(): Buffer {
    const rest = this.#buffered === 0 ? Buffer.alloc(0) : this.#consume(this.#buffered);
    this.#chunks = [];
    this.#offset = 0;
    this.#buffered = 0;
    this.#state = KEY_LENGTH;
    this.#need = 2;
    this.#box = null;
    return rest;
  }

  /**
   * The next complete box, or `null` if the bytes so far do not finish one.
   * An empty box (`00 00` where a box starts) is returned as an empty AmpBox.
   * @throws TooLong when a key length over 255 is read (the parser is then
   *   unusable: the stream cannot be re-synchronised).
   */
  next(): AmpBox | null {
    while (this.#buffered >= this.#need) {
      switch (this.#state) {
        case KEY_LENGTH: {
          const length = this.#readLength();
          if (length === 0) {
            const box = this.#box ?? new AmpBox();
            this.#box = null;
            return box;
          }
          if (length > MAX_KEY_LENGTH) throw new TooLong(true, false, length);
          this.#state = KEY;
          this.#need = length;
          break;
        }
        case KEY:
          this.#key = this.#consumeLatin1(this.#need);
          this.#state = VALUE_LENGTH;
          this.#need = 2;
          break;
        case VALUE_LENGTH: {
          const length = this.#readLength();
          this.#state = VALUE;
          this.#need = length;
          if (length === 0) this.#storeValue(EMPTY);
          break;
        }
        default:
          this.#storeValue(this.#consume(this.#need));
          break;
      }
    }
    return null;
  }

  #storeValue(value: Buffer): void {
    this.#box ??= new AmpBox();
    this.#box.set(this.#key, value);
    this.#key = '';
    this.#state = KEY_LENGTH;
    this.#need = 2;
  }

  #readLength(): number {
    const first = this.#chunks[0];
    if (first.length - this.#offset >= 2) {
      const length = first.readUInt16BE(this.#offset);
      this.#offset += 2;
      this.#buffered -= 2;
      if (this.#offset === first.length) this.#dropFirst();
      return length;
    }
    return this.#consume(2).readUInt16BE(0);
  }

  #consumeLatin1(n: number): string {
    const first = this.#chunks[0];
    if (first.length - this.#offset >= n) {
      const key = first.toString('latin1', this.#offset, this.#offset + n);
      this.#offset += n;
      this.#buffered -= n;
      if (this.#offset === first.length) this.#dropFirst();
      return key;
    }
    return this.#consume(n).toString('latin1');
  }

  #dropFirst(): void {
    this.#chunks.shift();
    this.#offset = 0;
  }

  /** Takes `n` (≤ buffered) bytes: a view when they lie in one chunk, else a copy. */
  #consume(n: number): Buffer {
    this.#buffered -= n;
    const chunks = this.#chunks;
    const first = chunks[0];
    const available = first.length - this.#offset;
    if (n <= available) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      if (this.#offset === first.length) this.#dropFirst();
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    let index = 0;
    let offset = this.#offset;
    while (copied < n) {
      const chunk = chunks[index];
      const take = Math.min(chunk.length - offset, n - copied);
      chunk.copy(out, copied, offset, offset + take);
      copied += take;
      offset += take;
      if (offset === chunk.length) {
        index++;
        offset = 0;
      }
    }
    // One splice for all the chunks used up: shift() per chunk would make
    // a value fed one byte at a time quadratic.
    chunks.splice(0, index);
    this.#offset = offset;
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

// ====================================================================== senders and receivers

/** Something boxes can be sent through: a {@link BinaryBoxProtocol}. */
export interface IBoxSender {
  /**
   * Sends `box` to the peer. A {@link QuitBox} closes the connection once
   * written.
   * @throws ConnectionLost once the connection is closed or closing.
   * @throws TooLong / InvalidArgumentError if the box cannot be encoded.
   */
  sendBox(box: AmpBox): void;

  /**
   * An error nobody handled (a responder failing for a request sent without
   * `_ask`, a box that could not be dispatched): logs it and drops the
   * connection.
   */
  unhandledError(failure: Failure): void;
}

/** Receives the boxes a {@link BinaryBoxProtocol} parses. */
export interface IBoxReceiver {
  /** Boxes are about to arrive from `sender`; it is also where answers go. Called once, first. */
  startReceivingBoxes(sender: IBoxSender): void;

  /**
   * A box arrived. A throw closes the connection with the thrown error as
   * the reason. Called in order, never re-entrantly.
   */
  ampBoxReceived(box: AmpBox): void;

  /** No more boxes will arrive: the connection closed for `reason`. Called once, last. */
  stopReceivingBoxes(reason: Failure): void;
}

/** The receiver of a BinaryBoxProtocol made without one: refuses boxes. */
const NO_RECEIVER: IBoxReceiver = {
  startReceivingBoxes() {},
  ampBoxReceived() {
    throw new MalformedAmpBox('this BinaryBoxProtocol has no box receiver');
  },
  stopReceivingBoxes() {},
};

// ====================================================================== BinaryBoxProtocol

/**
 * A Protocol that parses its input into {@link AmpBox}es for a
 * {@link IBoxReceiver} and sends boxes for it (it is the receiver's
 * {@link IBoxSender}).
 *
 * Order of calls to the receiver: `startReceivingBoxes(this)` in
 * `makeConnection` (before `connectionMade`), `ampBoxReceived(box)` per box
 * in wire order, `stopReceivingBoxes(reason)` once from `connectionLost`.
 *
 * A bad stream (a key length over 255, or a box the receiver throws on)
 * stops parsing at once, closes the connection (`loseConnection`: what was
 * already written is still sent) and makes that error the reason given to
 * `stopReceivingBoxes`, so pending requests fail with it (as Twisted does for
 * `TooLong`).
 */
export class BinaryBoxProtocol extends Protocol {
  /** Where parsed boxes go. Set it before the connection is made. */
  boxReceiver: IBoxReceiver;

  readonly #parser = new BoxParser();
  /** Set when this side closed the connection because of bad input. */
  #failReason: Failure | null = null;
  #stopped = false;
  #lost = false;
  /** Boxes held back while this side's StartTLS waits for its answer (see `prepareTLS`). */
  #tlsBuffer: AmpBox[] | null = null;
  #tls: AmpTLSState = 'none';

  constructor(boxReceiver: IBoxReceiver = NO_RECEIVER) {
    super();
    this.boxReceiver = boxReceiver;
  }

  /** Tells the box receiver, then runs `connectionMade()`. */
  override makeConnection(transport: Parameters<Protocol['makeConnection']>[0]): void {
    this.connected = true;
    this.transport = transport as this['transport'];
    this.boxReceiver.startReceivingBoxes(this);
    this.connectionMade();
  }

  /** Parses boxes out of `data` and hands each to the receiver. */
  override dataReceived(data: Buffer): void {
    if (this.#stopped) return;
    const parser = this.#parser;
    parser.push(data);
    try {
      for (let box = parser.next(); box !== null; box = parser.next()) {
        this.boxReceiver.ampBoxReceived(box);
        if (this.#stopped) break;
      }
    } catch (error) {
      this.#protocolError(Failure.from(error));
    }
  }

  /** Tells the receiver, with the bad-input reason if this side closed for one. */
  override connectionLost(reason: Failure): void {
    this.#lost = true;
    this.#stopped = true;
    this.boxReceiver.stopReceivingBoxes(this.#failReason ?? reason);
  }

  /**
   * Writes `box` (see {@link IBoxSender.sendBox}). While this side's
   * `StartTLS` waits for its answer, the box is held and sent once TLS has
   * started (over TLS). After a {@link TLSBox}, the transport switches to
   * TLS as the server side.
   * @throws TLSNotAvailable / OnlyOneTLS / InvalidArgumentError from the
   *   switch after a TLSBox (the box itself was written).
   */
  sendBox(box: AmpBox): void {
    if (this.#lost || this.#stopped || this.transport === undefined || this.#isClosing()) {
      throw new ConnectionLost('the AMP connection is closed');
    }
    if (this.#tlsBuffer !== null) {
      // Encode now so that an unencodable box fails its caller at once.
      box.serialize();
      this.#tlsBuffer.push(box);
      return;
    }
    this.transport.write(box.serialize());
    if (box instanceof QuitBox) this.transport.loseConnection();
    else if (box instanceof TLSBox) this.startTLS({ ...box.tlsOptions, isServer: true });
  }

  /** Logs `failure` and closes the connection (see {@link IBoxSender.unhandledError}). */
  unhandledError(failure: Failure): void {
    err(
      failure,
      'Amp server or network failure unhandled by client application. Dropping connection! ' +
        'To avoid, add errbacks to ALL remote commands!',
    );
    if (this.transport !== undefined && !this.#lost) this.transport.loseConnection();
  }

  /**
   * `none`; `pending` while this side's `StartTLS` waits for its answer
   * (boxes sent meanwhile are held); `started` once the transport switched
   * (the handshake may still be running: the transport queues writes until
   * it completes).
   */
  get tlsState(): AmpTLSState {
    return this.#tls;
  }

  /**
   * The asking side of `StartTLS` sent its request: from now on, hold the
   * boxes given to `sendBox` until {@link startTLS} (or {@link cancelTLS}).
   * @throws OnlyOneTLS if TLS is pending or started already.
   */
  protected prepareTLS(): void {
    if (this.#tls !== 'none') throw new OnlyOneTLS();
    this.#tls = 'pending';
    this.#tlsBuffer = [];
  }

  /** The `StartTLS` request failed: sends the held boxes in plaintext and stops holding. */
  protected cancelTLS(): void {
    if (this.#tls !== 'pending') return;
    this.#tls = 'none';
    this.#flushHeld();
  }

  /**
   * Switches the transport to TLS with `options` (`isServer` picks the
   * side), then sends the boxes held since {@link prepareTLS}. Bytes
   * received but not parsed yet belong to the TLS stream: they are handed to
   * the transport (`head`).
   * @throws TLSNotAvailable if the transport has no `startTLS`.
   * @throws OnlyOneTLS if TLS has started already.
   * @throws what `transport.startTLS` throws (bad options).
   */
  protected startTLS(options: StartTLSOptions): void {
    const transport = this.transport;
    if (!canStartTLS(transport)) throw new TLSNotAvailable();
    if (this.#tls === 'started') throw new OnlyOneTLS();
    const head = this.#parser.takeRemaining();
    transport.startTLS(head.length > 0 ? { ...options, head } : options);
    this.#tls = 'started';
    this.#flushHeld();
  }

  #flushHeld(): void {
    const held = this.#tlsBuffer;
    this.#tlsBuffer = null;
    if (held === null) return;
    for (const box of held) this.sendBox(box);
  }

  #isClosing(): boolean {
    const transport = this.transport as { disconnecting?: boolean };
    return transport.disconnecting === true;
  }

  #protocolError(failure: Failure): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#failReason = failure;
    this.#parser.takeRemaining();
    err(failure, 'AMP: bad input, dropping connection');
    this.transport.loseConnection();
  }
}
