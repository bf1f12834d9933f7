/**
 * AMP argument types: how one named argument (or response field) is encoded
 * into a box and decoded from one, byte for byte as Twisted's `amp.Argument`
 * subclasses do.
 *
 * | torsion      | Twisted     | JavaScript in → out                      | wire                                  |
 * | ------------ | ----------- | ---------------------------------------- | ------------------------------------- |
 * | `Integer`    | `Integer`   | `number \| bigint` → `number` (safe)      | decimal ASCII (`-123`)                |
 * | `BigInteger` | `Integer`   | `bigint \| number` → `bigint`            | decimal ASCII                         |
 * | `Bytes` (`String`) | `String` | `Uint8Array` → `Buffer`               | the bytes                             |
 * | `Unicode`    | `Unicode`   | `string`                                 | UTF-8                                 |
 * | `Bool` (`Boolean`) | `Boolean` | `boolean`                            | `True` / `False`                      |
 * | `Float`      | `Float`     | `number`                                 | Python `repr` (`1.0`, `1e-05`, `inf`, `nan`) |
 * | `Decimal`    | `Decimal`   | `DecimalValue \| string` → `DecimalValue` | Python `str(Decimal)` (`1.50`, `1E+2`) |
 * | `DateTime`   | `DateTime`  | `AmpDateTime \| Date` → `AmpDateTime`    | `YYYY-MM-DDTHH:MM:SS.ffffff±HH:MM`    |
 * | `Path`       | `Path`      | `string` (made absolute)                 | UTF-8                                 |
 * | `ListOf(T)`  | `ListOf`    | `T[]`                                    | each element 2-byte-length-prefixed   |
 * | `AmpList({…})` | `AmpList` | `{…}[]`                                  | each element a serialized box         |
 *
 * `optional(T)` makes an argument optional (Twisted's `optional=True`): it is
 * left out of the box when `undefined` or `null`, and absent from the decoded
 * object when missing. `Descriptor` (UNIX fd passing) is not provided.
 *
 * @module
 */

import { resolve } from 'node:path';
import { InvalidArgumentError } from '../../reactor/errors.js';
import { AmpBox, MAX_VALUE_LENGTH } from './box.js';
import { AmpError, InvalidSignature, MalformedAmpBox, TooLong } from './errors.js';
import type { AMP } from './protocol.js';
import { AmpDateTime, DecimalValue } from './values.js';

// ====================================================================== Argument

/**
 * One argument type. Subclasses implement `toBytes`/`fromBytes` (Twisted's
 * `toString`/`fromString`); an argument spread over several keys overrides
 * `toBox`/`fromBox` too.
 *
 * @typeParam Out - what decoding gives.
 * @typeParam In - what encoding accepts.
 */
export abstract class Argument<Out, In = Out> {
  /** Whether the argument may be left out (see {@link optional}). */
  readonly optional: boolean = false;

  /**
   * Encodes one value.
   * @param proto - the connection it is encoded for, if any.
   * @throws InvalidArgumentError for a value of the wrong type or range.
   */
  abstract toBytes(value: In, proto: AMP | null): Buffer;

  /**
   * Decodes one value. The buffer may be a view into a larger one: copy what
   * is kept.
   * @throws on bytes that are not a valid encoding (any error; `fromBox`
   *   wraps it in {@link MalformedAmpBox}).
   */
  abstract fromBytes(data: Buffer, proto: AMP | null): Out;

  /**
   * Encodes `values[name]` into `box[name]`. A missing (`undefined`/`null`)
   * optional value is left out.
   * @throws InvalidSignature for a missing required value.
   * @throws InvalidArgumentError for a value this type cannot encode.
   */
  toBox(
    name: string,
    box: AmpBox,
    values: Readonly<Record<string, unknown>>,
    proto: AMP | null,
  ): void {
    const value = values[name];
    if (value === undefined || value === null) {
      if (this.optional) return;
      throw new InvalidSignature(`missing required argument ${JSON.stringify(name)}`);
    }
    let data: Buffer;
    try {
      data = this.toBytes(value as In, proto);
    } catch (error) {
      if (error instanceof AmpError) throw error;
      const why = error instanceof Error ? error.message : String(error);
      throw new InvalidArgumentError(`cannot encode ${JSON.stringify(name)}: ${why}`);
    }
    box.set(name, data);
  }

  /**
   * Decodes `box[name]` into `out[name]`; a missing optional key leaves
   * `out[name]` unset.
   * @throws MalformedAmpBox for a missing required key or bytes that do not
   *   decode.
   */
  fromBox(name: string, box: AmpBox, out: Record<string, unknown>, proto: AMP | null): void {
    const data = box.get(name);
    if (data === undefined) {
      if (this.optional) return;
      throw new MalformedAmpBox(`missing required key ${JSON.stringify(name)}`);
    }
    try {
      out[name] = this.fromBytes(data, proto);
    } catch (error) {
      if (error instanceof MalformedAmpBox || error instanceof TooLong) throw error;
      const why = error instanceof Error ? error.message : String(error);
      throw new MalformedAmpBox(`bad value for ${JSON.stringify(name)}: ${why}`, { cause: error });
    }
  }
}

/** An {@link Argument} that may be left out; made by {@link optional}. */
export class OptionalArgument<Out, In = Out> extends Argument<Out, In> {
  override readonly optional: true = true;
  /** The argument type of the value when present. */
  readonly inner: Argument<Out, In>;

  constructor(inner: Argument<Out, In>) {
    super();
    this.inner = inner;
  }

  toBytes(value: In, proto: AMP | null): Buffer {
    return this.inner.toBytes(value, proto);
  }

  fromBytes(data: Buffer, proto: AMP | null): Out {
    return this.inner.fromBytes(data, proto);
  }

  /** Leaves a missing value out; otherwise encodes as the inner type does. */
  override toBox(
    name: string,
    box: AmpBox,
    values: Readonly<Record<string, unknown>>,
    proto: AMP | null,
  ): void {
    const value = values[name];
    if (value === undefined || value === null) return;
    this.inner.toBox(name, box, values, proto);
  }

  /** Leaves a missing key out; otherwise decodes as the inner type does. */
  override fromBox(
    name: string,
    box: AmpBox,
    out: Record<string, unknown>,
    proto: AMP | null,
  ): void {
    if (!box.has(name)) return;
    this.inner.fromBox(name, box, out, proto);
  }
}

/** `argument`, optional: it may be left out of the box (Twisted's `optional=True`). */
export function optional<Out, In>(argument: Argument<Out, In>): OptionalArgument<Out, In> {
  return argument instanceof OptionalArgument ? argument : new OptionalArgument(argument);
}

// ====================================================================== schemas

/** Any argument type (for constraints). */
export type AnyArgument = Argument<unknown, never>;

/** Names to argument types: a command's `arguments` or `response`, an AmpList's elements. */
export type ArgumentSchema = { readonly [name: string]: AnyArgument };

/** What an argument type decodes to. */
export type OutputOf<A> = A extends { fromBytes(data: Buffer, proto: never): infer O } ? O : never;

/** What an argument type accepts for encoding. */
export type InputOf<A> = A extends { toBytes(value: infer I, proto: never): Buffer } ? I : never;

type OptionalKeys<S> = {
  [K in keyof S]: S[K] extends { readonly optional: true } ? K : never;
}[keyof S];
type RequiredKeys<S> = Exclude<keyof S, OptionalKeys<S>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The object a schema encodes from: required keys, and optional ones that may be absent or null. */
export type ArgumentsIn<S> = Simplify<
  { [K in RequiredKeys<S>]: InputOf<S[K]> } & {
    [K in OptionalKeys<S>]?: InputOf<S[K]> | null | undefined;
  }
>;

/** The object a schema decodes to: optional keys are absent when not sent. */
export type ArgumentsOut<S> = Simplify<
  { [K in RequiredKeys<S>]: OutputOf<S[K]> } & { [K in OptionalKeys<S>]?: OutputOf<S[K]> }
>;

/** A schema as a list of entries, computed once per schema. */
export type SchemaEntries = ReadonlyArray<readonly [string, AnyArgument]>;

/**
 * The entries of `schema`, checked: names are 1–255 byte-string characters
 * and values are Argument instances.
 * @throws InvalidArgumentError otherwise.
 */
export function schemaEntries(schema: ArgumentSchema, what: string): SchemaEntries {
  if (schema === null || typeof schema !== 'object') {
    throw new InvalidArgumentError(`${what} must be an object of argument types`);
  }
  const entries: [string, AnyArgument][] = [];
  for (const name of Object.keys(schema)) {
    checkWireName(name, `${what} name`);
    const argument = schema[name];
    if (!(argument instanceof Argument)) {
      throw new InvalidArgumentError(`${what} ${JSON.stringify(name)} is not an AMP argument type`);
    }
    entries.push([name, argument]);
  }
  return entries;
}

/**
 * Checks a key, command name or error code: 1–255 characters, all ASCII
 * (what Twisted's byte strings hold in practice; the wire allows any byte,
 * and such boxes are still received).
 * @throws InvalidArgumentError otherwise.
 */
export function checkWireName(name: string, what: string): void {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    name.length > 255 ||
    /[\u0080-\uffff]/.test(name)
  ) {
    throw new InvalidArgumentError(
      `${what} must be 1-255 ASCII characters: ${JSON.stringify(name)}`,
    );
  }
}

/** Encodes `values` into `box` along `entries` (Twisted's `_objectsToStrings`). */
export function objectsToBox(
  entries: SchemaEntries,
  values: Readonly<Record<string, unknown>>,
  box: AmpBox,
  proto: AMP | null,
): AmpBox {
  if (values === null || typeof values !== 'object') {
    throw new InvalidSignature('arguments must be an object');
  }
  for (const [name, argument] of entries) argument.toBox(name, box, values, proto);
  return box;
}

/** Decodes `box` along `entries`; other keys are ignored (Twisted's `_stringsToObjects`). */
export function boxToObjects(
  entries: SchemaEntries,
  box: AmpBox,
  proto: AMP | null,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, argument] of entries) argument.fromBox(name, box, out, proto);
  return out;
}

// ====================================================================== numbers

const SAFE_DECIMAL = /^-?\d{1,15}$/;
// Python's int(): whitespace around, a sign, underscores between digits.
const PY_INT = /^\s*([+-]?\d(?:_?\d)*)\s*$/;

function parsePythonInt(data: Buffer): bigint {
  const match = PY_INT.exec(data.toString('latin1'));
  if (match === null)
    throw new InvalidArgumentError(`invalid integer ${JSON.stringify(data.toString('latin1'))}`);
  return BigInt(match[1].replaceAll('_', ''));
}

/** Decimal ASCII integers; decodes to a `number` and fails beyond the safe range (use {@link BigInteger}). */
export class IntegerArgument extends Argument<number, number | bigint> {
  toBytes(value: number | bigint): Buffer {
    if (typeof value === 'bigint') return Buffer.from(value.toString(), 'latin1');
    if (!Number.isSafeInteger(value))
      throw new InvalidArgumentError(`not a safe integer: ${String(value)}`);
    return Buffer.from(String(value), 'latin1');
  }

  fromBytes(data: Buffer): number {
    const text = data.toString('latin1');
    // + 0: Python's int('-0') is 0, not -0.
    if (SAFE_DECIMAL.test(text)) return Number(text) + 0;
    const big = parsePythonInt(data);
    const n = Number(big) + 0;
    if (!Number.isSafeInteger(n))
      throw new InvalidArgumentError(`integer ${big} is beyond 2^53; use BigInteger`);
    return n;
  }
}

/** Decimal ASCII integers of any size, as bigint. */
export class BigIntegerArgument extends Argument<bigint, bigint | number> {
  toBytes(value: bigint | number): Buffer {
    if (typeof value === 'number' && !Number.isInteger(value)) {
      throw new InvalidArgumentError(`not an integer: ${value}`);
    }
    if (typeof value !== 'number' && typeof value !== 'bigint') {
      throw new InvalidArgumentError(`not an integer: ${String(value)}`);
    }
    return Buffer.from(BigInt(value).toString(), 'latin1');
  }

  fromBytes(data: Buffer): bigint {
    return parsePythonInt(data);
  }
}

/**
 * Python's `repr(float)`: the shortest digits that round-trip (JavaScript
 * finds the same ones), fixed notation for decimal exponents -4 to 15, else
 * `d.ddde±XX`; `inf`, `-inf`, `nan`.
 */
export function pythonFloatRepr(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Infinity) return 'inf';
  if (value === -Infinity) return '-inf';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  const text = value.toExponential();
  const e = text.indexOf('e');
  const negative = text.charCodeAt(0) === 0x2d;
  const mantissa = text.slice(negative ? 1 : 0, e);
  const digits = mantissa.length > 1 ? mantissa[0] + mantissa.slice(2) : mantissa;
  const exponent = Number(text.slice(e + 1));
  const point = exponent + 1; // digits before the decimal point
  let out: string;
  if (point > -4 && point <= 16) {
    if (point <= 0) out = `0.${'0'.repeat(-point)}${digits}`;
    else if (point >= digits.length) out = `${digits}${'0'.repeat(point - digits.length)}.0`;
    else out = `${digits.slice(0, point)}.${digits.slice(point)}`;
  } else {
    const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const abs = Math.abs(exponent);
    out = `${head}e${exponent < 0 ? '-' : '+'}${abs < 10 ? '0' : ''}${abs}`;
  }
  return negative ? `-${out}` : out;
}

// Python's float(): whitespace, sign, underscores between digits, inf/nan.
const PY_FLOAT =
  /^[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/;
const PY_FLOAT_SPECIAL = /^([+-]?)(inf|infinity|nan)$/i;

/** Floats as Python's `repr` (see {@link pythonFloatRepr}); decodes what Python's `float()` accepts. */
export class FloatArgument extends Argument<number> {
  toBytes(value: number): Buffer {
    if (typeof value !== 'number')
      throw new InvalidArgumentError(`Bad float value ${String(value)}`);
    return Buffer.from(pythonFloatRepr(value), 'latin1');
  }

  fromBytes(data: Buffer): number {
    const text = data.toString('latin1').trim();
    if (PY_FLOAT.test(text)) return Number(text.replaceAll('_', ''));
    const special = PY_FLOAT_SPECIAL.exec(text);
    if (special === null)
      throw new InvalidArgumentError(`could not convert string to float: ${JSON.stringify(text)}`);
    if (special[2].toLowerCase() === 'nan') return Number.NaN;
    return special[1] === '-' ? -Infinity : Infinity;
  }
}

/** Exact decimals ({@link DecimalValue}); a string is parsed as a decimal literal first. */
export class DecimalArgument extends Argument<DecimalValue, DecimalValue | string> {
  toBytes(value: DecimalValue | string): Buffer {
    const decimal = typeof value === 'string' ? DecimalValue.parse(value) : value;
    if (!(decimal instanceof DecimalValue)) {
      throw new InvalidArgumentError(
        'amp.Decimal can only encode DecimalValue instances or decimal strings',
      );
    }
    return Buffer.from(decimal.toString(), 'latin1');
  }

  fromBytes(data: Buffer): DecimalValue {
    return DecimalValue.parse(data.toString('latin1'));
  }
}

// ====================================================================== bytes and text

/** Raw bytes, unchanged (Twisted's `String`). Decoded values are copies. */
export class BytesArgument extends Argument<Buffer, Uint8Array> {
  toBytes(value: Uint8Array): Buffer {
    if (!(value instanceof Uint8Array))
      throw new InvalidArgumentError('amp.String takes bytes (a Uint8Array)');
    return Buffer.isBuffer(value)
      ? value
      : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }

  fromBytes(data: Buffer): Buffer {
    // A copy: the view would keep the whole received chunk alive.
    return Buffer.from(data);
  }
}

// With the u flag a surrogate pair is one code point, so this finds lone halves only.
const LONE_SURROGATE = /\p{Cs}/u;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function encodeText(value: string): Buffer {
  if (typeof value !== 'string') throw new InvalidArgumentError('amp.Unicode takes a string');
  if (LONE_SURROGATE.test(value))
    throw new InvalidArgumentError('string has lone surrogates (not encodable as UTF-8)');
  return Buffer.from(value, 'utf8');
}

/** Text as UTF-8; decoding rejects invalid UTF-8 (as Python's strict decode). */
export class UnicodeArgument extends Argument<string> {
  toBytes(value: string): Buffer {
    return encodeText(value);
  }

  fromBytes(data: Buffer): string {
    return UTF8.decode(data);
  }
}

/** A filesystem path as UTF-8, made absolute when encoded (as Twisted's `FilePath`). */
export class PathArgument extends Argument<string> {
  toBytes(value: string): Buffer {
    if (typeof value !== 'string') throw new InvalidArgumentError('amp.Path takes a string path');
    return encodeText(resolve(value));
  }

  fromBytes(data: Buffer): string {
    return resolve(UTF8.decode(data));
  }
}

const TRUE = Buffer.from('True', 'latin1');
const FALSE = Buffer.from('False', 'latin1');

/** `True` / `False`, exactly. */
export class BooleanArgument extends Argument<boolean> {
  toBytes(value: boolean): Buffer {
    return value ? TRUE : FALSE;
  }

  fromBytes(data: Buffer): boolean {
    if (data.equals(TRUE)) return true;
    if (data.equals(FALSE)) return false;
    throw new InvalidArgumentError(`Bad boolean value: ${data.toString('latin1')}`);
  }
}

/** Timezone-aware date-times ({@link AmpDateTime}); a Date is sent as UTC. */
export class DateTimeArgument extends Argument<AmpDateTime, AmpDateTime | Date> {
  toBytes(value: AmpDateTime | Date): Buffer {
    const dt = value instanceof Date ? AmpDateTime.fromDate(value) : value;
    if (!(dt instanceof AmpDateTime))
      throw new InvalidArgumentError('amp.DateTime takes an AmpDateTime or a Date');
    return Buffer.from(dt.toString(), 'latin1');
  }

  fromBytes(data: Buffer): AmpDateTime {
    return AmpDateTime.parse(data.toString('latin1'));
  }
}

// ====================================================================== lists

/**
 * A list of one element type; each element's encoding is written with a
 * 2-byte length before it. The whole list is one value (≤ 65,535 bytes).
 */
export class ListOfArgument<E extends AnyArgument> extends Argument<
  OutputOf<E>[],
  readonly InputOf<E>[]
> {
  /** The element type. */
  readonly elementType: E;

  constructor(elementType: E) {
    super();
    if (!(elementType instanceof Argument))
      throw new InvalidArgumentError('ListOf takes an AMP argument type');
    this.elementType = elementType;
  }

  toBytes(values: readonly InputOf<E>[], proto: AMP | null): Buffer {
    if (!Array.isArray(values)) throw new InvalidArgumentError('ListOf takes an array');
    const parts: Buffer[] = [];
    let total = 0;
    const element = this.elementType as Argument<unknown, InputOf<E>>;
    for (const value of values) {
      const data = element.toBytes(value, proto);
      if (data.length > MAX_VALUE_LENGTH) throw new TooLong(false, true, data.length);
      const prefix = Buffer.allocUnsafe(2);
      prefix.writeUInt16BE(data.length, 0);
      parts.push(prefix, data);
      total += 2 + data.length;
    }
    return Buffer.concat(parts, total);
  }

  fromBytes(data: Buffer, proto: AMP | null): OutputOf<E>[] {
    const out: OutputOf<E>[] = [];
    let offset = 0;
    while (offset < data.length) {
      if (offset + 2 > data.length)
        throw new InvalidArgumentError('ListOf value ends inside a length prefix');
      const length = data.readUInt16BE(offset);
      offset += 2;
      if (offset + length > data.length)
        throw new InvalidArgumentError('ListOf value ends inside an element');
      out.push(
        this.elementType.fromBytes(data.subarray(offset, offset + length), proto) as OutputOf<E>,
      );
      offset += length;
    }
    return out;
  }
}

/** A list of objects, each encoded as a nested box along `schema`. */
export class AmpListArgument<S extends ArgumentSchema> extends Argument<
  ArgumentsOut<S>[],
  readonly ArgumentsIn<S>[]
> {
  /** The element schema. */
  readonly schema: S;
  readonly #entries: SchemaEntries;

  constructor(schema: S) {
    super();
    this.#entries = schemaEntries(schema, 'AmpList field');
    this.schema = schema;
  }

  toBytes(values: readonly ArgumentsIn<S>[], proto: AMP | null): Buffer {
    if (!Array.isArray(values)) throw new InvalidArgumentError('AmpList takes an array');
    const parts: Buffer[] = [];
    for (const value of values) {
      parts.push(
        objectsToBox(
          this.#entries,
          value as Record<string, unknown>,
          new AmpBox(),
          proto,
        ).serialize(),
      );
    }
    return Buffer.concat(parts);
  }

  fromBytes(data: Buffer, proto: AMP | null): ArgumentsOut<S>[] {
    return AmpBox.parseAll(data).map(
      (box) => boxToObjects(this.#entries, box, proto) as ArgumentsOut<S>,
    );
  }
}

// ====================================================================== instances

/** Integers as `number` (safe range). */
export const Integer: IntegerArgument = new IntegerArgument();
/** Integers of any size as `bigint` (the same wire format as `Integer`). */
export const BigInteger: BigIntegerArgument = new BigIntegerArgument();
/** Raw bytes (Twisted's `String`; also exported as `String`). */
export const Bytes: BytesArgument = new BytesArgument();
/** Text as UTF-8. */
export const Unicode: UnicodeArgument = new UnicodeArgument();
/** `True`/`False` (Twisted's `Boolean`; also exported as `Boolean`). */
export const Bool: BooleanArgument = new BooleanArgument();
/** Floats as Python's `repr`. */
export const Float: FloatArgument = new FloatArgument();
/** Exact decimals. */
export const Decimal: DecimalArgument = new DecimalArgument();
/** Date-times with microseconds and a UTC offset. */
export const DateTime: DateTimeArgument = new DateTimeArgument();
/** Absolute filesystem paths. */
export const Path: PathArgument = new PathArgument();

/** A list of `elementType` values (Twisted's `ListOf(elementType)`). */
export function ListOf<E extends AnyArgument>(elementType: E): ListOfArgument<E> {
  return new ListOfArgument(elementType);
}

/** A list of objects of `schema` (Twisted's `AmpList([(name, type), …])`). */
export function AmpList<const S extends ArgumentSchema>(schema: S): AmpListArgument<S> {
  return new AmpListArgument(schema);
}

export { Bool as Boolean, Bytes as String };
