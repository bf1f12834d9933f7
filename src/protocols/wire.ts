/**
 * The classic tiny TCP services inetd used to provide, as Twisted's
 * `twisted.protocols.wire`: {@link Echo} (RFC 862), {@link Discard} (RFC 863),
 * {@link Chargen} (RFC 864), {@link QOTD} (RFC 865) and {@link Daytime}
 * (RFC 867). Each has a ready factory, mountable on any stream port:
 *
 * ```ts
 * reactor.listenTCP(7, Echo.factory());
 * reactor.listenTCP(19, Chargen.factory());
 * reactor.listenUNIX('/run/qotd.sock', QOTD.factory('Simplicity is prerequisite for reliability.\r\n'));
 * ```
 *
 * @module
 */

import type { IDelayedCall, IPushProducer, IReactorTime } from '../reactor/interfaces.js';
import { reactor as defaultReactor } from '../reactor/reactor.js';
import { Protocol, ServerFactory } from './protocol.js';
import { toBuffer } from './receiver.js';

// ====================================================================== Echo, Discard

/**
 * Writes back whatever it receives (RFC 862), as soon as it arrives. Like
 * Twisted's, it applies no flow control of its own: a client that sends
 * without reading fills the server's write buffer.
 */
export class Echo extends Protocol {
  /** A factory of Echo protocols. */
  static factory(): ServerFactory<Echo> {
    return ServerFactory.forProtocol(Echo);
  }

  /** Writes `data` back. */
  override dataReceived(data: Buffer): void {
    this.transport.write(data);
  }
}

/** Reads and ignores everything (RFC 863). */
export class Discard extends Protocol {
  /** A factory of Discard protocols. */
  static factory(): ServerFactory<Discard> {
    return ServerFactory.forProtocol(Discard);
  }

  /** Ignores `data`. */
  override dataReceived(_data: Buffer): void {}
}

// ====================================================================== Chargen

/** Characters per line of the chargen pattern (RFC 864). */
const LINE_WIDTH = 72;
/** The printable ASCII characters, space to tilde, that the lines rotate through. */
const PRINTABLE = 95;
/** Whole pattern cycles per block: ~62 KiB, one write each. */
const CYCLES_PER_BLOCK = 9;
/** Most blocks written in one go before yielding to the event loop. */
const BLOCKS_PER_TURN = 16;

/**
 * The RFC 864 pattern: line `i` holds the 72 printable characters starting
 * at the `i`-th one (wrapping), then CRLF. After 95 lines the pattern repeats,
 * so a block of whole cycles can be written again and again.
 */
function chargenBlock(): Buffer {
  const cycle = Buffer.allocUnsafe(PRINTABLE * (LINE_WIDTH + 2));
  let at = 0;
  for (let line = 0; line < PRINTABLE; line++) {
    for (let i = 0; i < LINE_WIDTH; i++) cycle[at++] = 0x20 + ((line + i) % PRINTABLE);
    cycle[at++] = 0x0d;
    cycle[at++] = 0x0a;
  }
  const block = Buffer.allocUnsafe(cycle.length * CYCLES_PER_BLOCK);
  for (let i = 0; i < CYCLES_PER_BLOCK; i++) cycle.copy(block, i * cycle.length);
  return block;
}

let chargenData: Buffer | null = null;

/**
 * Sends the rotating 72-character line pattern of RFC 864 for as long as the
 * client stays connected, ignoring what it receives.
 *
 * It is a streaming (push) producer registered with its transport: it writes
 * whole ~62 KiB blocks until the transport pauses it (the socket's write
 * buffer passed its high-water mark, i.e. the client is not keeping up), and
 * starts again on `resumeProducing()`. So memory stays bounded whatever the
 * client does. Against a transport that never pauses it (no flow control), it
 * writes at most 16 blocks per reactor turn, continuing via
 * `reactor.callLater(0)`. It stops on `stopProducing()` or `connectionLost`.
 */
export class Chargen extends Protocol implements IPushProducer {
  readonly #reactor: IReactorTime;
  #paused = false;
  #stopped = false;
  #call: IDelayedCall | null = null;
  readonly #turn = (): void => {
    this.#call = null;
    this.#produce();
  };

  /**
   * A factory of Chargen protocols.
   * @param reactor - where the no-flow-control fallback schedules its turns.
   */
  static factory(reactor?: IReactorTime): ServerFactory<Chargen> {
    return ServerFactory.forProtocol(Chargen, reactor);
  }

  /** @param reactor - schedules the turns when the transport never pauses (default: the reactor). */
  constructor(reactor: IReactorTime = defaultReactor) {
    super();
    this.#reactor = reactor;
  }

  /** The pattern, one ~62 KiB block of whole cycles (shared, never modified). */
  static get pattern(): Buffer {
    chargenData ??= chargenBlock();
    return chargenData;
  }

  /** Registers as the transport's streaming producer and starts writing. */
  override connectionMade(): void {
    this.transport.registerProducer(this, true);
    this.#produce();
  }

  /** Stops writing until `resumeProducing()`. */
  pauseProducing(): void {
    this.#paused = true;
    this.#cancel();
  }

  /** Starts writing again, at once. */
  resumeProducing(): void {
    if (this.#stopped || !this.#paused) return;
    this.#paused = false;
    this.#produce();
  }

  /** Stops writing for good. */
  stopProducing(): void {
    this.#stopped = true;
    this.#cancel();
  }

  /** Stops writing. */
  override connectionLost(): void {
    this.stopProducing();
  }

  #produce(): void {
    const block = Chargen.pattern;
    for (let i = 0; i < BLOCKS_PER_TURN; i++) {
      if (this.#paused || this.#stopped) return;
      this.transport.write(block);
    }
    if (!this.#paused && !this.#stopped && this.#call === null) {
      this.#call = this.#reactor.callLater(0, this.#turn);
    }
  }

  #cancel(): void {
    const call = this.#call;
    this.#call = null;
    if (call?.active()) call.cancel();
  }
}

// ====================================================================== QOTD, Daytime

const DEFAULT_QUOTE = Buffer.from('An apple a day keeps the doctor away.\r\n');

/**
 * Sends a quote (RFC 865) on connect, then closes the connection. The quote
 * is the constructor's, or whatever an overridden `getQuote()` returns.
 */
export class QOTD extends Protocol {
  readonly #quote: Buffer;

  /** A factory of QOTD protocols, all sending `quote`. */
  static factory(quote?: Uint8Array | string): ServerFactory<QOTD> {
    return ServerFactory.forProtocol(QOTD, quote);
  }

  /** @param quote - the quote, CRLF included (default: Twisted's apple). */
  constructor(quote?: Uint8Array | string) {
    super();
    this.#quote = quote === undefined ? DEFAULT_QUOTE : toBuffer(quote);
  }

  /** The quote to send; override to choose one per connection. */
  getQuote(): Uint8Array | string {
    return this.#quote;
  }

  /** Writes the quote and closes. */
  override connectionMade(): void {
    this.transport.write(this.getQuote());
    this.transport.loseConnection();
  }
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * `date` in UTC in C's `asctime` format, as Twisted's Daytime sends it:
 * `Wed Jun 30 21:49:08 1993` (the day of the month padded with a space).
 */
export function asctime(date: Date): string {
  const day = date.getUTCDate();
  return (
    `${DAYS[date.getUTCDay()]} ${MONTHS[date.getUTCMonth()]} ${day < 10 ? ` ${day}` : day} ` +
    `${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())} ` +
    `${date.getUTCFullYear()}`
  );
}

/**
 * Sends the current date and time (RFC 867) on connect, in UTC in `asctime`
 * format followed by CRLF (`Wed Jun 30 21:49:08 1993\r\n`), then closes.
 */
export class Daytime extends Protocol {
  readonly #now: () => Date;

  /** A factory of Daytime protocols; `now` as in the constructor. */
  static factory(now?: () => Date): ServerFactory<Daytime> {
    return ServerFactory.forProtocol(Daytime, now);
  }

  /** @param now - the wall clock (default: `new Date()`); tests pass a fixed one. */
  constructor(now: () => Date = () => new Date()) {
    super();
    this.#now = now;
  }

  /** Writes the date and closes. */
  override connectionMade(): void {
    this.transport.write(`${asctime(this.#now())}\r\n`);
    this.transport.loseConnection();
  }
}
