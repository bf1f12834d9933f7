/**
 * Validators and conditional requests for static files (RFC 9110 §8.8, §13):
 * entity tags from a file's size and modification time, HTTP dates (the
 * three formats a recipient must accept), and the precondition order of
 * §13.2.2 (`If-Match`, `If-Unmodified-Since`, `If-None-Match`,
 * `If-Modified-Since`, then `If-Range` for a range request).
 *
 * @module
 */

import type { Headers } from './http/headers.js';

/** An entity-tag as sent: `opaque` keeps its double quotes; `weak` is the `W/` prefix. */
export interface EntityTag {
  readonly weak: boolean;
  readonly opaque: string;
}

/** The validators of one representation: its `ETag` (or `null` when disabled) and `Last-Modified`. */
export interface Validators {
  readonly etag: EntityTag | null;
  /** Last modification, in whole seconds since the epoch (HTTP dates have no finer unit). */
  readonly lastModified: number;
}

/** {@link evaluatePreconditions}: no condition stops the request; serve it. */
export const PRECONDITION_PASSED = 0;
/** {@link evaluatePreconditions}: answer 304 Not Modified. */
export const NOT_MODIFIED = 304;
/** {@link evaluatePreconditions}: answer 412 Precondition Failed. */
export const PRECONDITION_FAILED = 412;

/**
 * The entity-tag of a file of `size` bytes modified at `mtimeNs` (nanoseconds
 * since the epoch): `"<size hex>-<mtime ns hex>"`, `W/`-prefixed if `weak`.
 * Strong by default, as nginx's and Apache's: a file rewritten with the same
 * size within one nanosecond tick keeps its tag, which is the accepted cost
 * of not hashing contents.
 */
export function fileETag(size: bigint | number, mtimeNs: bigint, weak: boolean): EntityTag {
  return { weak, opaque: `"${size.toString(16)}-${mtimeNs.toString(16)}"` };
}

/** The `ETag` header value of `tag`. */
export function formatETag(tag: EntityTag): string {
  return tag.weak ? `W/${tag.opaque}` : tag.opaque;
}

/** Strong comparison (RFC 9110 §8.8.3.2): both strong and the same opaque tag. */
export function strongMatch(a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && a.opaque === b.opaque;
}

/** Weak comparison: the same opaque tag, `W/` ignored. */
export function weakMatch(a: EntityTag, b: EntityTag): boolean {
  return a.opaque === b.opaque;
}

/** What {@link parseETagList} returns for `*`. */
export const ANY_ETAG = '*';

/**
 * Parses an `If-Match`/`If-None-Match` value: `*`, or a comma-separated list
 * of entity-tags (`"x"`, `W/"y"`; commas may occur inside the quotes).
 * Returns `null` if the value is malformed (an unquoted tag, a stray byte
 * between tags, an unterminated quote) or holds no tag. Empty list elements
 * are allowed.
 */
export function parseETagList(value: string): EntityTag[] | typeof ANY_ETAG | null {
  const n = value.length;
  let i = skipOWS(value, 0);
  if (value.charCodeAt(i) === 0x2a /* * */ && skipOWS(value, i + 1) === n) return ANY_ETAG;
  const tags: EntityTag[] = [];
  while (i < n) {
    const c = value.charCodeAt(i);
    if (c === 0x2c /* , */) {
      i = skipOWS(value, i + 1);
      continue;
    }
    let weak = false;
    if (c === 0x57 /* W */ && value.charCodeAt(i + 1) === 0x2f /* / */) {
      weak = true;
      i += 2;
    }
    if (value.charCodeAt(i) !== 0x22 /* " */) return null;
    const close = value.indexOf('"', i + 1);
    if (close < 0) return null;
    tags.push({ weak, opaque: value.slice(i, close + 1) });
    i = skipOWS(value, close + 1);
    if (i < n && value.charCodeAt(i) !== 0x2c) return null;
  }
  return tags.length === 0 ? null : tags;
}

function skipOWS(s: string, i: number): number {
  while (i < s.length && (s.charCodeAt(i) === 0x20 || s.charCodeAt(i) === 0x09)) i++;
  return i;
}

// ====================================================================== dates

/** `ms` (since the epoch) as an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
export function formatHttpDate(ms: number): string {
  // toUTCString() produces exactly the IMF-fixdate form for years 0–9999.
  return new Date(ms).toUTCString();
}

const MONTHS: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};

const IMF_FIXDATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT$/;
const RFC850_DATE =
  /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d\d)-([A-Z][a-z]{2})-(\d\d) (\d\d):(\d\d):(\d\d) GMT$/;
const ASCTIME_DATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})$/;

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7) in any of its three forms
 * (IMF-fixdate, RFC 850, asctime), in whole seconds since the epoch, or
 * `NaN` if `value` is none of them or names an impossible time. Unlike
 * `Date.parse` it never reads a date as local time. A two-digit RFC 850 year
 * more than 50 years ahead of `nowMs` is taken to be in the past century.
 */
export function parseHttpDate(value: string, nowMs: number = Date.now()): number {
  let m = IMF_FIXDATE.exec(value);
  if (m !== null) return utcSeconds(+m[3]!, m[2]!, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  m = RFC850_DATE.exec(value);
  if (m !== null) {
    const thisYear = new Date(nowMs).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + +m[3]!;
    if (year > thisYear + 50) year -= 100;
    return utcSeconds(year, m[2]!, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  }
  m = ASCTIME_DATE.exec(value);
  if (m !== null) return utcSeconds(+m[6]!, m[1]!, +m[2]!.trim(), +m[3]!, +m[4]!, +m[5]!);
  return Number.NaN;
}

function utcSeconds(
  year: number,
  monthName: string,
  day: number,
  hour: number,
  minute: number,
  second: number,
): number {
  const month = MONTHS[monthName];
  // 60 is a leap second: accepted and folded into the next minute.
  if (month === undefined || day < 1 || hour > 23 || minute > 59 || second > 60) return Number.NaN;
  const ms = Date.UTC(year, month, day, hour, minute, second);
  // Date.UTC rolls "Feb 30" over into March: refuse instead.
  if (new Date(Date.UTC(year, month, day)).getUTCDate() !== day) return Number.NaN;
  return ms / 1000;
}

// ====================================================================== preconditions

/**
 * The one value of a singleton field, or `null` if it is absent or was sent
 * more than once (a repeated singleton is not a valid value).
 */
function single(headers: Headers, name: string): string | null {
  const all = headers.getAll(name);
  return all.length === 1 ? all[0]! : null;
}

/** The field lines of a list field joined into one list, or `null` if absent. */
function list(headers: Headers, name: string): string | null {
  const all = headers.getAll(name);
  return all.length === 0 ? null : all.length === 1 ? all[0]! : all.join(', ');
}

/**
 * Evaluates the preconditions of a GET or HEAD request on an existing
 * representation with `validators`, in the order of RFC 9110 §13.2.2:
 *
 * 1. `If-Match`: `*` passes; otherwise a strong match with the ETag is
 *    needed (none, or a malformed value, or no ETag → 412).
 * 2. Without `If-Match`, `If-Unmodified-Since` (a valid date): modified
 *    after it → 412.
 * 3. `If-None-Match`: `*` or a weak match → 304 (a malformed value is
 *    ignored: the full response is always a safe answer).
 * 4. Without `If-None-Match` (§13.1.3), `If-Modified-Since` (one valid
 *    date): not modified since → 304.
 *
 * Returns {@link PRECONDITION_PASSED}, {@link NOT_MODIFIED} or
 * {@link PRECONDITION_FAILED}. `If-Range` is separate: {@link ifRangeMatches}.
 */
export function evaluatePreconditions(headers: Headers, validators: Validators): number {
  const { etag, lastModified } = validators;
  const ifMatch = list(headers, 'if-match');
  if (ifMatch !== null) {
    const tags = parseETagList(ifMatch);
    if (
      tags !== ANY_ETAG &&
      (tags === null || etag === null || !tags.some((t) => strongMatch(t, etag)))
    ) {
      return PRECONDITION_FAILED;
    }
  } else {
    const ius = single(headers, 'if-unmodified-since');
    if (ius !== null) {
      const date = parseHttpDate(ius);
      if (!Number.isNaN(date) && lastModified > date) return PRECONDITION_FAILED;
    }
  }
  const ifNoneMatch = list(headers, 'if-none-match');
  if (ifNoneMatch !== null) {
    const tags = parseETagList(ifNoneMatch);
    if (tags === ANY_ETAG) return NOT_MODIFIED;
    if (tags !== null && etag !== null && tags.some((t) => weakMatch(t, etag))) return NOT_MODIFIED;
    return PRECONDITION_PASSED;
  }
  const ims = single(headers, 'if-modified-since');
  if (ims !== null) {
    const date = parseHttpDate(ims);
    if (!Number.isNaN(date) && lastModified <= date) return NOT_MODIFIED;
  }
  return PRECONDITION_PASSED;
}

/**
 * Whether a range request may be honoured under its `If-Range` (RFC 9110
 * §13.1.5): `true` without the field; with an entity-tag, only on a strong
 * match (a weak tag never matches); with a date, only if it equals
 * `Last-Modified` exactly. A malformed or repeated value → `false` (send the
 * whole representation).
 */
export function ifRangeMatches(headers: Headers, validators: Validators): boolean {
  const all = headers.getAll('if-range');
  if (all.length === 0) return true;
  if (all.length > 1) return false;
  const value = all[0]!.trim();
  if (value.startsWith('"') || value.startsWith('W/"')) {
    const tags = parseETagList(value);
    return (
      tags !== null &&
      tags !== ANY_ETAG &&
      tags.length === 1 &&
      validators.etag !== null &&
      strongMatch(tags[0]!, validators.etag)
    );
  }
  const date = parseHttpDate(value);
  return !Number.isNaN(date) && date === validators.lastModified;
}
