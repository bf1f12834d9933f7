/**
 * Value types for AMP arguments JavaScript has no exact equivalent of:
 * {@link DecimalValue} (Python's `decimal.Decimal`) and {@link AmpDateTime}
 * (a `datetime.datetime` with microseconds and a fixed UTC offset). Both
 * round-trip Twisted's wire strings exactly.
 *
 * @module
 */

import { InvalidArgumentError } from '../../reactor/errors.js';

// ====================================================================== DecimalValue

/** The kind of a {@link DecimalValue}. */
export type DecimalKind = 'finite' | 'Infinity' | 'NaN' | 'sNaN';

// Python's decimal grammar (whitespace around, underscores between digits).
const DECIMAL_FINITE =
  /^([+-])?((?:\d(?:_?\d)*)?)(?:\.((?:\d(?:_?\d)*)?))?(?:[eE]([+-]?\d(?:_?\d)*))?$/;
const DECIMAL_SPECIAL = /^([+-])?(?:(inf(?:inity)?)|(s?nan)(\d*))$/i;

/**
 * An exact decimal number as Python's `decimal.Decimal` holds it: a sign, a
 * coefficient (a string of digits) and an exponent, or a special value. It
 * keeps precision (`1.50` stays `1.50`). `toString()` is Python's
 * `str(Decimal)` (the decimal spec's to-scientific-string), which is what
 * Twisted's `amp.Decimal` puts on the wire.
 */
export class DecimalValue {
  /** `true` for a negative number (including `-0`, `-Infinity`, `-NaN`). */
  readonly negative: boolean;
  /** `finite`, `Infinity`, `NaN` (quiet) or `sNaN` (signalling). */
  readonly kind: DecimalKind;
  /** The digits, no leading zeros (`'0'` for zero); a NaN's payload (possibly `''`). */
  readonly coefficient: string;
  /** The power of ten the coefficient is scaled by (0 for specials). */
  readonly exponent: number;

  /**
   * @throws InvalidArgumentError for a coefficient that is not digits or a
   *   non-integer exponent.
   */
  constructor(negative: boolean, kind: DecimalKind, coefficient: string, exponent = 0) {
    if (!/^\d*$/.test(coefficient) || (kind === 'finite' && coefficient === '')) {
      throw new InvalidArgumentError(`bad decimal coefficient ${JSON.stringify(coefficient)}`);
    }
    if (!Number.isSafeInteger(exponent)) {
      throw new InvalidArgumentError(`bad decimal exponent ${exponent}`);
    }
    this.negative = negative;
    this.kind = kind;
    // A NaN's payload drops leading zeros too, and a zero payload is none.
    const digits = kind === 'Infinity' ? '' : stripZeros(coefficient);
    this.coefficient = kind !== 'finite' && digits === '0' ? '' : digits;
    this.exponent = kind === 'finite' ? exponent : 0;
  }

  /**
   * Parses a decimal string as Python's `Decimal(str)` does: surrounding
   * whitespace, `_` between digits, `inf`/`Infinity`/`nan`/`sNaN` in any case.
   * @throws InvalidArgumentError if it is not a decimal.
   */
  static parse(text: string): DecimalValue {
    const s = text.trim();
    const finite = DECIMAL_FINITE.exec(s);
    if (finite !== null) {
      const intPart = (finite[2] ?? '').replaceAll('_', '');
      const fracPart = (finite[3] ?? '').replaceAll('_', '');
      if (intPart.length + fracPart.length > 0) {
        const exp = finite[4] === undefined ? 0 : Number(finite[4].replaceAll('_', ''));
        return new DecimalValue(
          finite[1] === '-',
          'finite',
          stripZeros(intPart + fracPart),
          exp - fracPart.length,
        );
      }
    }
    const special = DECIMAL_SPECIAL.exec(s);
    if (special !== null) {
      const negative = special[1] === '-';
      if (special[2] !== undefined) return new DecimalValue(negative, 'Infinity', '');
      const kind = special[3].toLowerCase() === 'snan' ? 'sNaN' : 'NaN';
      return new DecimalValue(negative, kind, special[4] ?? '');
    }
    throw new InvalidArgumentError(`invalid decimal literal ${JSON.stringify(text)}`);
  }

  /**
   * The exact decimal value of a finite JavaScript number, through its
   * shortest round-trip form (`0.1` → `0.1`, as Python's `Decimal(repr(x))`),
   * or a bigint.
   * @throws InvalidArgumentError for a non-finite number.
   */
  static from(value: number | bigint): DecimalValue {
    if (typeof value === 'bigint') return DecimalValue.parse(value.toString());
    if (Number.isNaN(value)) return new DecimalValue(false, 'NaN', '');
    if (!Number.isFinite(value)) return new DecimalValue(value < 0, 'Infinity', '');
    if (Object.is(value, -0)) return new DecimalValue(true, 'finite', '0');
    return DecimalValue.parse(value.toExponential());
  }

  /** `true` for `NaN` and `sNaN`. */
  isNaN(): boolean {
    return this.kind === 'NaN' || this.kind === 'sNaN';
  }

  /** The nearest JavaScript number (NaN for NaNs). */
  toNumber(): number {
    if (this.isNaN()) return Number.NaN;
    if (this.kind === 'Infinity') return this.negative ? -Infinity : Infinity;
    return Number(`${this.negative ? '-' : ''}${this.coefficient}e${this.exponent}`);
  }

  /** Python's `str(Decimal)`: the wire form (`1.50`, `1E+2`, `-Infinity`, `sNaN`). */
  toString(): string {
    const sign = this.negative ? '-' : '';
    if (this.kind === 'Infinity') return `${sign}Infinity`;
    if (this.kind !== 'finite') return `${sign}${this.kind}${this.coefficient}`;
    const digits = this.coefficient;
    const exp = this.exponent;
    const adjusted = exp + digits.length - 1;
    if (exp <= 0 && adjusted >= -6) {
      if (exp === 0) return sign + digits;
      const point = digits.length + exp;
      if (point > 0) return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
      return `${sign}0.${'0'.repeat(-point)}${digits}`;
    }
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${mantissa}E${adjusted >= 0 ? '+' : '-'}${Math.abs(adjusted)}`;
  }

  /** Same sign, kind, coefficient and exponent (so `1.0` ≠ `1.00`). */
  equals(other: DecimalValue): boolean {
    return (
      this.negative === other.negative &&
      this.kind === other.kind &&
      this.coefficient === other.coefficient &&
      this.exponent === other.exponent
    );
  }
}

function stripZeros(digits: string): string {
  let i = 0;
  while (i < digits.length - 1 && digits.charCodeAt(i) === 0x30) i++;
  return i === 0 ? digits : digits.slice(i);
}

// ====================================================================== AmpDateTime

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function checkRange(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}, not ${value}`);
  }
}

/** The fields of an {@link AmpDateTime}. */
export interface AmpDateTimeFields {
  year: number;
  month: number;
  day: number;
  hour?: number;
  minute?: number;
  second?: number;
  microsecond?: number;
  /** Minutes east of UTC (`+05:30` is 330, `-08:00` is -480). Default 0. */
  offsetMinutes?: number;
}

/**
 * A wall-clock date and time with microseconds and a fixed UTC offset: what
 * Twisted's `amp.DateTime` carries (a timezone-aware `datetime.datetime`).
 * Fields are validated as Python's `datetime` does (years 1–9999, real days,
 * offset strictly within ±24 h).
 *
 * `toString()` is the 32-character wire form
 * `YYYY-MM-DDTHH:MM:SS.ffffff±HH:MM`; as in Twisted, a zero offset is written
 * `-00:00`.
 */
export class AmpDateTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly microsecond: number;
  /** Minutes east of UTC. */
  readonly offsetMinutes: number;

  /** @throws InvalidArgumentError for a field out of range. */
  constructor(fields: AmpDateTimeFields) {
    const {
      year,
      month,
      day,
      hour = 0,
      minute = 0,
      second = 0,
      microsecond = 0,
      offsetMinutes = 0,
    } = fields;
    checkRange('year', year, 1, 9999);
    checkRange('month', month, 1, 12);
    const days = month === 2 && isLeap(year) ? 29 : DAYS_IN_MONTH[month - 1];
    checkRange('day', day, 1, days);
    checkRange('hour', hour, 0, 23);
    checkRange('minute', minute, 0, 59);
    checkRange('second', second, 0, 59);
    checkRange('microsecond', microsecond, 0, 999_999);
    checkRange('offsetMinutes', offsetMinutes, -1439, 1439);
    this.year = year;
    this.month = month;
    this.day = day;
    this.hour = hour;
    this.minute = minute;
    this.second = second;
    this.microsecond = microsecond;
    this.offsetMinutes = offsetMinutes;
  }

  /**
   * The wall-clock time of `date` at `offsetMinutes` east of UTC (default:
   * UTC). Microseconds are the date's milliseconds × 1000.
   * @throws InvalidArgumentError for an invalid Date or a year outside 1–9999.
   */
  static fromDate(date: Date, offsetMinutes = 0): AmpDateTime {
    const time = date.getTime();
    if (Number.isNaN(time)) throw new InvalidArgumentError('invalid Date');
    checkRange('offsetMinutes', offsetMinutes, -1439, 1439);
    const local = new Date(time + offsetMinutes * 60_000);
    return new AmpDateTime({
      year: local.getUTCFullYear(),
      month: local.getUTCMonth() + 1,
      day: local.getUTCDate(),
      hour: local.getUTCHours(),
      minute: local.getUTCMinutes(),
      second: local.getUTCSeconds(),
      microsecond: local.getUTCMilliseconds() * 1000,
      offsetMinutes,
    });
  }

  /**
   * Parses the 32-character wire form, as Twisted's `DateTime.fromString`.
   * @throws InvalidArgumentError if the text is not in that form or a field
   *   is out of range.
   */
  static parse(text: string): AmpDateTime {
    if (text.length !== 32 || !WIRE_FORM.test(text)) {
      throw new InvalidArgumentError(`invalid date format ${JSON.stringify(text)}`);
    }
    const num = (start: number, end: number): number => Number(text.slice(start, end));
    const offset = num(27, 29) * 60 + num(30, 32);
    return new AmpDateTime({
      year: num(0, 4),
      month: num(5, 7),
      day: num(8, 10),
      hour: num(11, 13),
      minute: num(14, 16),
      second: num(17, 19),
      microsecond: num(20, 26),
      offsetMinutes: text[26] === '-' ? -offset : offset,
    });
  }

  /** The instant as a Date (sub-millisecond digits are dropped). */
  toDate(): Date {
    const date = new Date(0);
    // setUTCFullYear, unlike Date.UTC, does not map years 0–99 to 1900–1999.
    date.setUTCFullYear(this.year, this.month - 1, this.day);
    date.setUTCHours(this.hour, this.minute, this.second, Math.floor(this.microsecond / 1000));
    return new Date(date.getTime() - this.offsetMinutes * 60_000);
  }

  /** The wire form, e.g. `2012-01-23T12:34:56.054321-00:00`. */
  toString(): string {
    const offset = this.offsetMinutes;
    const abs = Math.abs(offset);
    return (
      `${pad(this.year, 4)}-${pad(this.month, 2)}-${pad(this.day, 2)}` +
      `T${pad(this.hour, 2)}:${pad(this.minute, 2)}:${pad(this.second, 2)}` +
      `.${pad(this.microsecond, 6)}${offset > 0 ? '+' : '-'}` +
      `${pad(Math.floor(abs / 60), 2)}:${pad(abs % 60, 2)}`
    );
  }

  /** Same fields, offset included (the same instant at another offset is not equal). */
  equals(other: AmpDateTime): boolean {
    return this.toString() === other.toString();
  }
}

const WIRE_FORM = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$/;
