/**
 * {@link ResponseDate}: the `Date` and `Server` fields of responses, made
 * once a second (RFC 9110 §6.6.1 lets an origin server send the time its
 * response was generated at that resolution), with the status lines they
 * follow, as shared pre-encoded bytes.
 *
 * @module
 */

import type { IReactorTime } from '../../reactor/interfaces.js';
import { statusLine } from './status.js';

/**
 * The `Date` header value, refreshed at most once a second (on the
 * reactor's clock, at the wall clock's second boundaries), with the
 * `Date` and `Server` field lines ready to append to a head.
 */
export class ResponseDate {
  readonly #reactor: IReactorTime;
  #until = Number.NEGATIVE_INFINITY;
  #value = '';
  #fields = '';
  #bytes: Buffer = Buffer.alloc(0);
  /** By status code - 100: the status line (registered phrase) and the fields, for this second. */
  #starts: (Buffer | undefined)[] = [];

  constructor(reactor: IReactorTime) {
    this.#reactor = reactor;
  }

  #refresh(): void {
    const now = this.#reactor.seconds();
    if (now < this.#until) return;
    const ms = Date.now();
    this.#value = new Date(ms).toUTCString();
    this.#fields = `Date: ${this.#value}\r\nServer: torsion\r\n`;
    this.#bytes = Buffer.from(this.#fields, 'latin1');
    this.#starts = [];
    this.#until = now + (1000 - (ms % 1000)) / 1000;
  }

  /** The IMF-fixdate of now (e.g. `Sun, 06 Nov 1994 08:49:37 GMT`). */
  value(): string {
    this.#refresh();
    return this.#value;
  }

  /** `"Date: …\r\nServer: torsion\r\n"`. */
  fields(): string {
    this.#refresh();
    return this.#fields;
  }

  /** {@link fields} as bytes (shared: do not modify). */
  fieldBytes(): Buffer {
    this.#refresh();
    return this.#bytes;
  }

  /**
   * `"HTTP/1.1 <code> <registered phrase>\r\n"` followed by
   * {@link fields}, as bytes made once per code and second (shared: do not
   * modify). `fresh`: the caller read the clock for this head already (skip
   * the check).
   * @throws InvalidArgumentError if `code` is not an integer in 100–999.
   */
  headStart(code: number, fresh: boolean): Buffer {
    if (!fresh) this.#refresh();
    const start = this.#starts[code - 100];
    if (start !== undefined) return start;
    const made = Buffer.concat([statusLine(code), this.#bytes]);
    this.#starts[code - 100] = made;
    return made;
  }
}
