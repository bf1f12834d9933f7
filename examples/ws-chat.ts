/**
 * Chat in the browser: one room over WebSockets, with a static page.
 *
 *     npx tsx examples/ws-chat.ts [--port 8080] [--interface 127.0.0.1]
 *     npx torsion web --listen tcp:8080:interface=127.0.0.1 --resource examples/ws-chat.ts
 *
 * then open http://127.0.0.1:8080/ in two browser windows.
 *
 * - `/`, `/chat.js`, `/style.css`: the page, from `examples/ws-chat/`
 *   (`File`: conditional GETs, streamed);
 * - `/ws`: the WebSocket endpoint (`WebSocketResource`). Frames are JSON
 *   text; the schema is in `examples/ws-chat/room.ts`: `join` with a nick
 *   (1 to 24 letters, digits, `_`, `-`, `.`; unique in the room, case
 *   blind), then `say`; the server sends `welcome` (with the members and
 *   the last 50 messages), `message`, `joined`, `left` and `error`.
 *   A frame over 16 KiB closes the connection (1009), a refused frame gets
 *   an `error` frame and changes nothing. A handshake from another site's
 *   page (its `Origin` is not this host) gets 403.
 *
 * Slow clients: a broadcast queues the frame on each member and returns; it
 * never waits. A member whose queued output passes `maxBuffered` (256 KiB)
 * is dropped: closed with 1008 (the socket is destroyed if the closing
 * handshake is not over within 5 s), and the room hears `left` with reason
 * `dropped`. Keep-alive pings every 30 s drop peers that vanished without a
 * close. At shutdown (Ctrl-C, SIGTERM) every client is closed with 1001.
 *
 * Run directly it listens on 127.0.0.1:8080 (`--port 0` picks a free port;
 * `PORT` in the environment works too), prints `listening on
 * http://HOST:PORT/` and stops on Ctrl-C or SIGTERM. The default export
 * builds the root resource (for `torsion web --resource`).
 */

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IPv4Address } from '../src/reactor/address.js';
import type { Failure } from '../src/reactor/failure.js';
import { msg } from '../src/reactor/log.js';
import { reactor } from '../src/reactor/reactor.js';
import type { IResource } from '../src/web/iweb.js';
import { Resource } from '../src/web/resource.js';
import { File } from '../src/web/static.js';
import {
  CloseCode,
  type WebSocketClosed,
  WebSocketFactory,
  WebSocketProtocol,
  type WebSocketRequestInfo,
  WebSocketResource,
  type WebSocketResourceOptions,
} from '../src/web/websocket.js';
import { isMain, serveExample } from './serve.js';
import {
  ChatError,
  type ChatMember,
  ChatRoom,
  type ChatRoomOptions,
  parseClientMessage,
} from './ws-chat/room.js';

/** The page's files: `index.html`, `chat.js`, `style.css` (the room module next to them is not served). */
export const PAGE_DIRECTORY = fileURLToPath(new URL('./ws-chat/', import.meta.url));

/**
 * The largest frame a client may send (16 KiB): a `say` of 2,000 characters
 * fits as `JSON.stringify` writes it (4 bytes for the largest character, 6
 * for an escaped control character).
 */
export const MAX_PAYLOAD = 16 * 1024;

/** Seconds a closing handshake may take (a dropped client's never ends) before the socket is destroyed. */
export const CLOSE_TIMEOUT = 5;

/** Seconds between keep-alive pings; a peer that does not answer one in time is dropped. */
export const PING_INTERVAL = 30;

/** One browser (or any WebSocket client) in the chat. */
export class ChatProtocol extends WebSocketProtocol implements ChatMember {
  /** Set once the room dropped this client: later frames from it are ignored. */
  dropped = false;

  /** The room, from the factory that built this protocol. */
  get room(): ChatRoom {
    return (this.factory as ChatFactory).room;
  }

  override messageReceived(data: Buffer | string, isBinary: boolean): void {
    if (this.dropped) return;
    const room = this.room;
    if (isBinary) {
      room.refuse(this, new ChatError('binary-unsupported', 'Send JSON text frames.'));
      return;
    }
    try {
      const frame = parseClientMessage(typeof data === 'string' ? data : data.toString('utf8'));
      if (frame.type === 'join') room.join(this, frame.nick);
      else room.say(this, frame.text);
    } catch (error) {
      if (!(error instanceof ChatError)) throw error;
      room.refuse(this, error);
    }
  }

  override connectionLost(_reason: Failure<WebSocketClosed>): void {
    this.room.leave(this);
  }

  // ------------------------------------------------------------ ChatMember

  send(frame: string): void {
    this.transport.sendMessage(frame);
  }

  get bufferedAmount(): number {
    return this.transport.bufferedAmount;
  }

  /**
   * Closes with 1008. The close frame waits behind everything this client
   * has not read: if the closing handshake is not over within the
   * resource's `closeTimeout` ({@link CLOSE_TIMEOUT}), the socket is
   * destroyed.
   */
  drop(): void {
    this.dropped = true;
    msg(`ws-chat: dropping ${describePeer(this)}: ${this.bufferedAmount} bytes unread`);
    this.transport.close(CloseCode.POLICY_VIOLATION, 'too slow: messages not read');
  }
}

function describePeer(protocol: ChatProtocol): string {
  const peer = protocol.transport.getPeer() as Partial<IPv4Address>;
  return peer.host !== undefined ? `${peer.host}:${peer.port}` : 'a client';
}

/**
 * Whether a handshake comes from a page of this server (or from no page at
 * all): a browser's `Origin` must name the host the request was sent to.
 * Other sites' pages cannot then join the room in their visitors' names.
 */
export function isSameOrigin(request: WebSocketRequestInfo): boolean {
  const origin = request.getHeader('origin');
  if (origin === null) return true;
  const host = request.getHeader('host');
  if (host === null) return false;
  try {
    return new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}

/** Builds a {@link ChatProtocol} per connection; holds the one room they share. */
export class ChatFactory extends WebSocketFactory<ChatProtocol> {
  readonly room: ChatRoom;

  /** @throws InvalidArgumentError for a bad `maxBuffered`. */
  constructor(options: ChatRoomOptions = {}) {
    super();
    this.protocol = ChatProtocol;
    this.room = new ChatRoom(options);
  }

  /** A {@link ChatProtocol}, or `null` (the resource answers 403) for another site's page. */
  override buildProtocol(request: WebSocketRequestInfo): ChatProtocol | null {
    return isSameOrigin(request) ? super.buildProtocol(request) : null;
  }
}

/** What {@link createChat} returns. */
export interface Chat {
  /** The resource tree to serve. */
  readonly root: IResource;
  /** The `/ws` endpoint (its `shutdown()` closes every connection with 1001). */
  readonly websocket: WebSocketResource<ChatProtocol>;
  /** The factory, holding the room. */
  readonly factory: ChatFactory;
}

/**
 * The chat's resource tree: the page at `/`, `/chat.js`, `/style.css`, the
 * WebSocket endpoint at `/ws`.
 *
 * @param options - the room's options (`maxBuffered`, `now`).
 * @param websocket - options of the `/ws` resource, over this example's
 *   defaults (`maxPayload` {@link MAX_PAYLOAD}, `pingInterval`
 *   {@link PING_INTERVAL}, `closeTimeout` {@link CLOSE_TIMEOUT}).
 * @throws InvalidArgumentError for a bad option.
 */
export function createChat(
  options: ChatRoomOptions = {},
  websocket: WebSocketResourceOptions = {},
): Chat {
  const factory = new ChatFactory(options);
  const endpoint = new WebSocketResource(factory, {
    maxPayload: MAX_PAYLOAD,
    pingInterval: PING_INTERVAL,
    closeTimeout: CLOSE_TIMEOUT,
    ...websocket,
  });
  const root = new Resource();
  root.putChild('', new File(join(PAGE_DIRECTORY, 'index.html')));
  root.putChild('chat.js', new File(join(PAGE_DIRECTORY, 'chat.js')));
  root.putChild('style.css', new File(join(PAGE_DIRECTORY, 'style.css')));
  root.putChild('ws', endpoint);
  return { root, websocket: endpoint, factory };
}

/**
 * The chat for `torsion web --resource`: {@link createChat}, with its
 * WebSocket connections closed (1001, going away) before the reactor shuts
 * down, so that the process can exit.
 */
export default function chat(): IResource {
  const created = createChat();
  reactor.addSystemEventTrigger('before', 'shutdown', () => created.websocket.shutdown());
  return created.root;
}

// chat() registers the before-shutdown trigger that closes the WebSockets (1001).
if (isMain(import.meta.url)) {
  process.exitCode = await serveExample(chat(), process.argv.slice(2), {
    defaultPort: process.env.PORT,
  });
}
