/**
 * The room of examples/ws-chat apart from sockets: the frame schema and its
 * checks, nick rules, history, notices, and the slow-client policy, with
 * members that record what they were sent and report a chosen
 * `bufferedAmount`.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ChatError,
  type ChatMember,
  ChatRoom,
  checkNick,
  checkText,
  HISTORY_SIZE,
  MAX_NICK_LENGTH,
  MAX_TEXT_LENGTH,
  parseClientMessage,
  type ServerMessage,
} from '../examples/ws-chat/room.js';
import { InvalidArgumentError } from '../src/reactor/errors.js';

/** A member that keeps its frames, parsed, and can pretend to be backed up. */
class FakeMember implements ChatMember {
  readonly frames: ServerMessage[] = [];
  bufferedAmount = 0;
  /** When set, each frame sent adds its size to `bufferedAmount` (a peer that reads nothing). */
  grows = false;
  drops = 0;
  /** Runs inside `drop()` (to test re-entrancy). */
  onDrop: (() => void) | null = null;

  send(frame: string): void {
    this.frames.push(JSON.parse(frame) as ServerMessage);
    if (this.grows) this.bufferedAmount += Buffer.byteLength(frame);
  }

  drop(): void {
    this.drops++;
    this.onDrop?.();
  }

  /** Frames of one type. */
  of<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }>[] {
    return this.frames.filter((f) => f.type === type) as Extract<ServerMessage, { type: T }>[];
  }
}

function throwsChat(fn: () => unknown, kind: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.equal(error instanceof ChatError, true, `expected a ChatError, got ${String(error)}`);
    const e = error as ChatError;
    assert.equal(e.kind, kind, `kind of ${e.message}`);
    assert.equal(e.code, `TORSION_ERR_CHAT_${kind.toUpperCase().replaceAll('-', '_')}`);
    assert.notEqual(e.message, '', 'a ChatError says what is wrong');
    return true;
  });
}

describe('frames', () => {
  test('join and say parse; anything else is a bad-message', () => {
    assert.deepEqual(parseClientMessage('{"type":"join","nick":"ann"}'), {
      type: 'join',
      nick: 'ann',
    });
    assert.deepEqual(parseClientMessage('{"type":"say","text":"hi","extra":1}'), {
      type: 'say',
      text: 'hi',
    });
    for (const bad of [
      'not json',
      '',
      '[]',
      'null',
      '"join"',
      '42',
      '{"type":"shout","text":"x"}',
      '{"nick":"ann"}',
      '{"type":"join"}',
      '{"type":"join","nick":7}',
      '{"type":"say","text":null}',
    ]) {
      throwsChat(() => parseClientMessage(bad), 'bad-message');
    }
  });

  test('nick rules: trimmed, NFC, 1 to MAX_NICK_LENGTH letters/digits/_-.', () => {
    assert.equal(checkNick('  ann  '), 'ann');
    assert.equal(checkNick('Zoë_2.x-y'), 'Zoë_2.x-y');
    // e + combining diaeresis becomes one code point.
    assert.equal(checkNick('Zoe\u0308'), 'Zo\u00eb');
    assert.equal(checkNick('a'.repeat(MAX_NICK_LENGTH)), 'a'.repeat(MAX_NICK_LENGTH));
    throwsChat(() => checkNick(''), 'nick-empty');
    throwsChat(() => checkNick('   '), 'nick-empty');
    throwsChat(() => checkNick('a'.repeat(MAX_NICK_LENGTH + 1)), 'nick-too-long');
    for (const bad of ['two words', '<b>', 'tab\there', 'nul\0', 'a/b', 'x\u202ey']) {
      throwsChat(() => checkNick(bad), 'nick-invalid');
    }
  });

  test('text rules: non-blank, at most MAX_TEXT_LENGTH characters, kept as is', () => {
    assert.equal(checkText(' two\nlines '), ' two\nlines ');
    assert.equal(checkText('<script>x</script>'), '<script>x</script>');
    // Counted in characters: astral ones are two UTF-16 units but one character.
    assert.equal(checkText('😀'.repeat(MAX_TEXT_LENGTH)).length, 2 * MAX_TEXT_LENGTH);
    throwsChat(() => checkText(''), 'text-empty');
    throwsChat(() => checkText(' \n\t'), 'text-empty');
    throwsChat(() => checkText('x'.repeat(MAX_TEXT_LENGTH + 1)), 'text-too-long');
  });
});

describe('ChatRoom', () => {
  test('options are checked', () => {
    for (const maxBuffered of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new ChatRoom({ maxBuffered }), InvalidArgumentError);
    }
  });

  test('join: welcome to the newcomer, joined to the others; duplicates refused', () => {
    const room = new ChatRoom({ now: () => 1000 });
    const ann = new FakeMember();
    const bob = new FakeMember();
    assert.equal(room.join(ann, ' ann '), 'ann');
    assert.deepEqual(ann.frames, [{ type: 'welcome', nick: 'ann', members: ['ann'], history: [] }]);
    assert.equal(room.join(bob, 'bob'), 'bob');
    assert.deepEqual(bob.frames, [
      { type: 'welcome', nick: 'bob', members: ['ann', 'bob'], history: [] },
    ]);
    assert.deepEqual(ann.frames.at(-1), { type: 'joined', nick: 'bob', time: 1000 });

    const other = new FakeMember();
    throwsChat(() => room.join(other, 'ANN'), 'nick-taken');
    throwsChat(() => room.join(other, ''), 'nick-empty');
    throwsChat(() => room.join(ann, 'ann2'), 'already-joined');
    assert.deepEqual(room.nicks, ['ann', 'bob']);
    assert.equal(other.frames.length, 0, 'a refused join sends nothing by itself');
    assert.equal(room.nickOf(other), null);
  });

  test('say: to everyone, author included, with increasing ids; not before join', () => {
    let now = 5;
    const room = new ChatRoom({ now: () => now });
    const ann = new FakeMember();
    const bob = new FakeMember();
    room.join(ann, 'ann');
    room.join(bob, 'bob');
    now = 6;
    const first = room.say(ann, 'hello <b>bob</b>');
    assert.deepEqual(first, {
      type: 'message',
      id: 1,
      nick: 'ann',
      text: 'hello <b>bob</b>',
      time: 6,
    });
    room.say(bob, 'hi');
    assert.deepEqual(
      ann.of('message').map((m) => [m.id, m.nick, m.text]),
      [
        [1, 'ann', 'hello <b>bob</b>'],
        [2, 'bob', 'hi'],
      ],
    );
    assert.deepEqual(bob.of('message'), ann.of('message'));
    const stranger = new FakeMember();
    throwsChat(() => room.say(stranger, 'psst'), 'not-joined');
    throwsChat(() => room.say(ann, '  '), 'text-empty');
    assert.equal(room.history.length, 2, 'refused messages are not kept');
  });

  test('history: a newcomer gets the last HISTORY_SIZE messages, oldest first', () => {
    const room = new ChatRoom();
    const ann = new FakeMember();
    room.join(ann, 'ann');
    const total = HISTORY_SIZE + 17;
    for (let i = 1; i <= total; i++) room.say(ann, `message ${i}`);
    const late = new FakeMember();
    room.join(late, 'late');
    const welcome = late.of('welcome')[0]!;
    assert.equal(welcome.history.length, HISTORY_SIZE);
    assert.equal(welcome.history[0]!.text, `message ${total - HISTORY_SIZE + 1}`);
    assert.equal(welcome.history.at(-1)!.text, `message ${total}`);
    assert.deepEqual(
      welcome.history.map((m) => m.id),
      Array.from({ length: HISTORY_SIZE }, (_, i) => total - HISTORY_SIZE + 1 + i),
    );
  });

  test('leave: the others hear it; the nick is free again; twice is once', () => {
    const room = new ChatRoom({ now: () => 9 });
    const ann = new FakeMember();
    const bob = new FakeMember();
    room.join(ann, 'ann');
    room.join(bob, 'bob');
    room.leave(bob);
    room.leave(bob);
    room.leave(new FakeMember());
    assert.deepEqual(ann.of('left'), [{ type: 'left', nick: 'bob', reason: 'quit', time: 9 }]);
    assert.deepEqual(room.nicks, ['ann']);
    const again = new FakeMember();
    assert.equal(room.join(again, 'Bob'), 'Bob');
  });

  test('refuse: an error frame with the kind and message', () => {
    const room = new ChatRoom();
    const ann = new FakeMember();
    room.refuse(ann, new ChatError('nick-taken', 'ann is taken: choose another nick.'));
    assert.deepEqual(ann.frames, [
      { type: 'error', code: 'nick-taken', message: 'ann is taken: choose another nick.' },
    ]);
  });

  test('a member past the bound is dropped once; the rest get every frame and the notice', () => {
    const room = new ChatRoom({ maxBuffered: 100 });
    const fast = new FakeMember();
    const slow = new FakeMember();
    const also = new FakeMember();
    room.join(fast, 'fast');
    room.join(slow, 'slow');
    room.join(also, 'also');
    room.say(fast, 'one');
    slow.bufferedAmount = 101;
    room.say(fast, 'two');
    assert.equal(slow.drops, 1);
    assert.equal(room.dropped, 1);
    assert.deepEqual(room.nicks, ['fast', 'also']);
    assert.deepEqual(
      slow.of('message').map((m) => m.text),
      ['one'],
      'nothing is queued past the bound',
    );
    for (const member of [fast, also]) {
      // The notice comes after the message whose delivery dropped it.
      const tail = member.frames.slice(-2).map((f) => f.type);
      assert.deepEqual(tail, ['message', 'left']);
      assert.deepEqual(member.of('left')[0]!.reason, 'dropped');
      assert.equal(member.of('left')[0]!.nick, 'slow');
    }
    room.say(fast, 'three');
    room.refuse(slow, new ChatError('text-empty', 'Say something.'));
    room.leave(slow);
    assert.equal(slow.drops, 1, 'dropped once');
    assert.equal(slow.frames.at(-1)!.type, 'message', 'a dropped member gets nothing more');
    assert.equal(fast.of('left').length, 1, 'its connectionLost is not a second notice');
    assert.deepEqual(
      fast.of('message').map((m) => m.text),
      ['one', 'two', 'three'],
    );
  });

  test('a drop() that leaves at once, and a drop caused by the notice itself', () => {
    const room = new ChatRoom({ maxBuffered: 10 });
    const fast = new FakeMember();
    const a = new FakeMember();
    const b = new FakeMember();
    room.join(fast, 'fast');
    room.join(a, 'a');
    room.join(b, 'b');
    // A transport that closes synchronously: connectionLost runs inside drop().
    a.onDrop = () => room.leave(a);
    b.onDrop = () => room.leave(b);
    a.bufferedAmount = 11;
    // b takes the message (nothing queued yet), which backs it up: the
    // notice about a then drops b in the same round.
    b.grows = true;
    room.say(fast, 'x');
    assert.deepEqual(room.nicks, ['fast']);
    assert.deepEqual(
      fast.frames.slice(-3).map((f) => (f.type === 'left' ? `left ${f.nick} ${f.reason}` : f.type)),
      ['message', 'left a dropped', 'left b dropped'],
    );
    assert.deepEqual(
      b.frames.slice(-1).map((f) => f.type),
      ['message'],
    );
    assert.equal(a.drops, 1);
    assert.equal(b.drops, 1);
    assert.equal(room.dropped, 2);
  });

  test('a newcomer that cannot take its welcome is dropped unseen', () => {
    const room = new ChatRoom({ maxBuffered: 10 });
    const ann = new FakeMember();
    room.join(ann, 'ann');
    const stuck = new FakeMember();
    stuck.bufferedAmount = 11;
    assert.equal(room.join(stuck, 'stuck'), null);
    assert.equal(stuck.drops, 1);
    assert.deepEqual(room.nicks, ['ann']);
    assert.equal(ann.frames.length, 1, 'no joined or left notice for it');
  });
});
