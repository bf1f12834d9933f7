/**
 * The chat room of `examples/ws-chat.ts`, apart from any socket: who is in
 * it, the message schema and its checks, the history, and delivery under
 * the slow-client policy. Members are anything with a `send`, a
 * `bufferedAmount` and a `drop` (a WebSocket protocol in the example, a
 * plain object in a unit test).
 *
 * ## Wire schema (JSON text frames)
 *
 * Client → server:
 * - `{"type":"join","nick":NICK}`: enter the room (once per connection);
 * - `{"type":"say","text":TEXT}`: send a message to everyone (after join).
 *
 * Server → client:
 * - `{"type":"welcome","nick":NICK,"members":[NICK…],"history":[MESSAGE…]}`:
 *   the join succeeded; `members` in joining order (the newcomer last),
 *   `history` the last {@link HISTORY_SIZE} messages, oldest first;
 * - MESSAGE = `{"type":"message","id":N,"nick":NICK,"text":TEXT,"time":MS}`:
 *   a message, sent to every member including its author; `id` counts up
 *   from 1 per room, `time` is milliseconds since the epoch;
 * - `{"type":"joined","nick":NICK,"time":MS}`: someone else came in;
 * - `{"type":"left","nick":NICK,"reason":"quit"|"dropped","time":MS}`:
 *   someone left: closed the connection (`quit`), or was dropped for not
 *   reading (`dropped`);
 * - `{"type":"error","code":CODE,"message":TEXT}`: the last frame was
 *   refused (nothing else happened; the connection stays open). CODE is a
 *   {@link ChatErrorKind}.
 *
 * ## Slow clients
 * A frame for a member whose queued output (`bufferedAmount`) is already
 * past `maxBuffered` is not queued: the member is removed from the room at
 * once and `drop()`ped, and the others are told (`left`, reason `dropped`)
 * once the current delivery round is over. So a member never holds more
 * than `maxBuffered` bytes plus one frame. Delivery never waits for anyone:
 * a broadcast queues the frame on each member and returns.
 *
 * @module
 */

import { InvalidArgumentError, TorsionError } from '../../src/reactor/errors.js';

/** How many messages a newcomer gets in its `welcome`. */
export const HISTORY_SIZE = 50;
/** The longest nick, in characters (code points). */
export const MAX_NICK_LENGTH = 24;
/** The longest message text, in characters (code points). */
export const MAX_TEXT_LENGTH = 2000;
/** Default bound on a member's queued output before it is dropped (256 KiB). */
export const DEFAULT_MAX_BUFFERED = 256 * 1024;

/** Letters, digits, marks, `_`, `-` and `.`: no spaces, no controls, nothing to spoof with. */
const NICK_CHARACTERS = /^[\p{L}\p{M}\p{N}_.-]+$/u;

// ====================================================================== schema

/** A frame a client sends. */
export type ClientMessage = { type: 'join'; nick: string } | { type: 'say'; text: string };

/** One chat message, as broadcast and as kept in the history. */
export interface ChatMessage {
  type: 'message';
  id: number;
  nick: string;
  text: string;
  time: number;
}

/** Why a member left: it closed the connection, or the room dropped it for not reading. */
export type LeaveReason = 'quit' | 'dropped';

/** A frame the server sends. */
export type ServerMessage =
  | { type: 'welcome'; nick: string; members: string[]; history: ChatMessage[] }
  | ChatMessage
  | { type: 'joined'; nick: string; time: number }
  | { type: 'left'; nick: string; reason: LeaveReason; time: number }
  | { type: 'error'; code: ChatErrorKind; message: string };

/** The `code` of an `error` frame, and the `kind` of a {@link ChatError}. */
export type ChatErrorKind =
  | 'bad-message'
  | 'binary-unsupported'
  | 'nick-empty'
  | 'nick-too-long'
  | 'nick-invalid'
  | 'nick-taken'
  | 'already-joined'
  | 'not-joined'
  | 'text-empty'
  | 'text-too-long';

/**
 * A frame the room refuses. `kind` is what goes on the wire (`error`
 * frame's `code`); `code` is `TORSION_ERR_CHAT_` and the kind in capitals
 * (`nick-taken` → `TORSION_ERR_CHAT_NICK_TAKEN`).
 */
export class ChatError extends TorsionError {
  readonly kind: ChatErrorKind;

  constructor(kind: ChatErrorKind, message: string) {
    super(message, `TORSION_ERR_CHAT_${kind.toUpperCase().replaceAll('-', '_')}`);
    this.kind = kind;
  }
}

function characters(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * Parses one text frame from a client.
 *
 * @throws ChatError (`bad-message`) if it is not JSON, not an object, of an
 *   unknown `type`, or without a string `nick`/`text`. The values themselves
 *   are checked by {@link ChatRoom.join} and {@link ChatRoom.say}.
 */
export function parseClientMessage(frame: string): ClientMessage {
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    throw new ChatError('bad-message', 'Frames must be JSON objects.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ChatError('bad-message', 'Frames must be JSON objects.');
  }
  const message = value as { type?: unknown; nick?: unknown; text?: unknown };
  if (message.type === 'join') {
    if (typeof message.nick !== 'string') {
      throw new ChatError('bad-message', 'A join frame needs a string "nick".');
    }
    return { type: 'join', nick: message.nick };
  }
  if (message.type === 'say') {
    if (typeof message.text !== 'string') {
      throw new ChatError('bad-message', 'A say frame needs a string "text".');
    }
    return { type: 'say', text: message.text };
  }
  throw new ChatError('bad-message', 'Unknown frame type: use "join" or "say".');
}

/**
 * The nick `raw` stands for: trimmed and in Unicode NFC form.
 *
 * @throws ChatError `nick-empty`, `nick-too-long` (over
 *   {@link MAX_NICK_LENGTH} characters) or `nick-invalid` (anything but
 *   letters, digits, `_`, `-` and `.`).
 */
export function checkNick(raw: string): string {
  const nick = raw.trim().normalize('NFC');
  if (nick === '') throw new ChatError('nick-empty', 'Choose a nick.');
  if (characters(nick) > MAX_NICK_LENGTH) {
    throw new ChatError('nick-too-long', `A nick is at most ${MAX_NICK_LENGTH} characters.`);
  }
  if (!NICK_CHARACTERS.test(nick)) {
    throw new ChatError('nick-invalid', 'A nick is letters, digits, "_", "-" and "." only.');
  }
  return nick;
}

/**
 * Checks a message text: returned as given (line breaks and spaces kept).
 *
 * @throws ChatError `text-empty` (nothing but white space) or
 *   `text-too-long` (over {@link MAX_TEXT_LENGTH} characters).
 */
export function checkText(text: string): string {
  if (text.trim() === '') throw new ChatError('text-empty', 'Say something.');
  if (text.length > MAX_TEXT_LENGTH && characters(text) > MAX_TEXT_LENGTH) {
    throw new ChatError('text-too-long', `A message is at most ${MAX_TEXT_LENGTH} characters.`);
  }
  return text;
}

// ====================================================================== the room

/** A connection as the room sees it. */
export interface ChatMember {
  /** Queues one text frame; never waits. Called only while the member is in the room or joining. */
  send(frame: string): void;
  /** Bytes queued for this member and not yet written to its socket. */
  readonly bufferedAmount: number;
  /**
   * The room has dropped this member for not reading (it is no longer in
   * the room): close its connection. Called at most once per member.
   */
  drop(): void;
}

/** Options of {@link ChatRoom}. */
export interface ChatRoomOptions {
  /** Queued bytes past which a member is dropped (default {@link DEFAULT_MAX_BUFFERED}). */
  maxBuffered?: number;
  /** The time stamped on frames, in ms since the epoch (default `Date.now`). */
  now?: () => number;
}

/** One room: members by nick, the history, and delivery with the slow-client policy. */
export class ChatRoom {
  /** Queued bytes past which a member is dropped. */
  readonly maxBuffered: number;
  /** How many members were dropped for not reading, in all. */
  dropped = 0;
  readonly #now: () => number;
  /** Member → nick, in joining order. */
  readonly #members = new Map<ChatMember, string>();
  /** Lower-cased nick → member, for the duplicate check. */
  readonly #byNick = new Map<string, ChatMember>();
  /** Members dropped for not reading: they get nothing more, and are dropped once. */
  readonly #droppedMembers = new WeakSet<ChatMember>();
  readonly #history: ChatMessage[] = [];
  #nextId = 1;
  /** Nicks dropped during the current delivery round, announced when it ends. */
  #pendingLeaves: string[] = [];
  #delivering = false;

  /** @throws InvalidArgumentError if `maxBuffered` is not a positive integer. */
  constructor(options: ChatRoomOptions = {}) {
    const maxBuffered = options.maxBuffered ?? DEFAULT_MAX_BUFFERED;
    if (!Number.isInteger(maxBuffered) || maxBuffered <= 0) {
      throw new InvalidArgumentError(`maxBuffered must be a positive integer: ${maxBuffered}`);
    }
    this.maxBuffered = maxBuffered;
    this.#now = options.now ?? Date.now;
  }

  /** The nicks in the room, in joining order. */
  get nicks(): string[] {
    return [...this.#members.values()];
  }

  /** The last {@link HISTORY_SIZE} messages, oldest first (a copy). */
  get history(): ChatMessage[] {
    return this.#history.slice();
  }

  /** `member`'s nick, or `null` if it is not in the room. */
  nickOf(member: ChatMember): string | null {
    return this.#members.get(member) ?? null;
  }

  /**
   * Puts `member` in the room as `rawNick` (see {@link checkNick}), sends it
   * its `welcome` and tells the others (`joined`). Returns the nick, or
   * `null` if the welcome could not be queued (the member was dropped for
   * not reading, and is not in the room).
   *
   * @throws ChatError `already-joined`, `nick-taken` (case-insensitively,
   *   by a member now in the room) or one of {@link checkNick}'s.
   */
  join(member: ChatMember, rawNick: string): string | null {
    if (this.#members.has(member)) {
      throw new ChatError(
        'already-joined',
        `You are already in the room as ${this.#members.get(member)}.`,
      );
    }
    const nick = checkNick(rawNick);
    const key = nick.toLowerCase();
    if (this.#byNick.has(key))
      throw new ChatError('nick-taken', `${nick} is taken: choose another nick.`);
    this.#round(() => {
      // The newcomer gets its welcome before it counts as a member: if even
      // that cannot be queued, it is dropped without anyone hearing of it.
      const members = [...this.#members.values(), nick];
      const welcome = this.#frame({ type: 'welcome', nick, members, history: this.#history });
      if (!this.#deliver(member, welcome)) return;
      this.#members.set(member, nick);
      this.#byNick.set(key, member);
      this.#broadcast(this.#frame({ type: 'joined', nick, time: this.#now() }), member);
    });
    return this.#members.has(member) ? nick : null;
  }

  /**
   * Sends `text` (see {@link checkText}) from `member` to everyone in the
   * room, the author included, and keeps it in the history. Returns the message.
   *
   * @throws ChatError `not-joined`, or one of {@link checkText}'s.
   */
  say(member: ChatMember, text: string): ChatMessage {
    const nick = this.#members.get(member);
    if (nick === undefined) throw new ChatError('not-joined', 'Join the room before you speak.');
    const message: ChatMessage = {
      type: 'message',
      id: this.#nextId++,
      nick,
      text: checkText(text),
      time: this.#now(),
    };
    this.#history.push(message);
    if (this.#history.length > HISTORY_SIZE) this.#history.shift();
    this.#round(() => this.#broadcast(this.#frame(message), null));
    return message;
  }

  /**
   * Sends `member` an `error` frame for `error` (under the same policy: a
   * member that does not read its errors is dropped too). A member not in
   * the room, once dropped, gets nothing.
   */
  refuse(member: ChatMember, error: ChatError): void {
    this.#round(() => {
      this.#deliver(
        member,
        this.#frame({ type: 'error', code: error.kind, message: error.message }),
      );
    });
  }

  /**
   * `member` has gone (its connection closed): takes it out of the room and
   * tells the others (`left`, reason `quit`). Nothing happens for a member
   * not in the room (never joined, or already dropped). Called once per
   * connection, from `connectionLost`.
   */
  leave(member: ChatMember): void {
    const nick = this.#remove(member);
    if (nick === null) return;
    this.#round(() => {
      this.#broadcast(this.#frame({ type: 'left', nick, reason: 'quit', time: this.#now() }), null);
    });
  }

  #remove(member: ChatMember): string | null {
    const nick = this.#members.get(member);
    if (nick === undefined) return null;
    this.#members.delete(member);
    this.#byNick.delete(nick.toLowerCase());
    return nick;
  }

  #frame(message: ServerMessage): string {
    return JSON.stringify(message);
  }

  /**
   * Runs `deliveries`, then announces the members they dropped, and the
   * members those announcements dropped, until none is left. Re-entrant
   * calls (a `drop()` that closes synchronously and leaves) join the round
   * under way.
   */
  #round(deliveries: () => void): void {
    if (this.#delivering) {
      deliveries();
      return;
    }
    this.#delivering = true;
    try {
      deliveries();
      while (this.#pendingLeaves.length > 0) {
        const nicks = this.#pendingLeaves;
        this.#pendingLeaves = [];
        for (const nick of nicks) {
          this.#broadcast(
            this.#frame({ type: 'left', nick, reason: 'dropped', time: this.#now() }),
            null,
          );
        }
      }
    } finally {
      this.#delivering = false;
    }
  }

  /** Queues `frame` on every member but `except`. Each send is a queueing, never a wait. */
  #broadcast(frame: string, except: ChatMember | null): void {
    // Members dropped during the loop are deleted from the map: a Map
    // iterator skips deleted entries, so they get nothing more.
    for (const member of this.#members.keys()) {
      if (member !== except) this.#deliver(member, frame);
    }
  }

  /**
   * Queues `frame` on `member`, or drops `member` if its queued output is
   * already past the bound (so a member holds at most `maxBuffered` bytes
   * plus one frame). Returns whether the frame was queued.
   */
  #deliver(member: ChatMember, frame: string): boolean {
    if (this.#droppedMembers.has(member)) return false;
    if (member.bufferedAmount <= this.maxBuffered) {
      member.send(frame);
      return true;
    }
    this.#droppedMembers.add(member);
    this.dropped++;
    const nick = this.#remove(member);
    if (nick !== null) this.#pendingLeaves.push(nick);
    member.drop();
    return false;
  }
}
