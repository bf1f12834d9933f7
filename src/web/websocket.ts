/**
 * WebSockets through `ws`, in Twisted's protocol model: a
 * {@link WebSocketResource} hosts an endpoint in the resource tree (the
 * upgrade leaves the HTTP channel and `ws` runs the connection),
 * {@link WebSocketProtocol} and {@link WebSocketFactory} are what a user
 * subclasses, {@link WebSocketTransport} is the connection with flow control
 * both ways, and {@link connectWS} is the client with the same classes.
 *
 * @example
 * ```ts
 * class Echo extends WebSocketProtocol {
 *   override messageReceived(data: Buffer | string): void {
 *     this.transport.sendMessage(data);
 *   }
 * }
 * const root = new Resource();
 * root.putChild('echo', new WebSocketResource(WebSocketFactory.forProtocol(Echo)));
 * reactor.listenTCP(8080, new Site(root), { interface: '127.0.0.1' });
 *
 * const client = await connectWS('ws://127.0.0.1:8080/echo', () => new MyClient());
 * ```
 *
 * @module
 */

export type { ConnectWSOptions } from './websocket/client.js';
export { connectWS, DEFAULT_WS_HANDSHAKE_TIMEOUT } from './websocket/client.js';
export type {
  WebSocketConnectionInit,
  WebSocketConnectionOwner,
} from './websocket/connection.js';
export { WebSocketConnection } from './websocket/connection.js';
export type { WebSocketClosedOptions } from './websocket/errors.js';
export {
  CloseCode,
  isValidCloseCode,
  WebSocketClosed,
  WebSocketHandshakeError,
  WebSocketOverflowError,
} from './websocket/errors.js';
export type { PerMessageDeflateOptions, WebSocketConnectionOptions } from './websocket/options.js';
export {
  DEFAULT_CLOSE_TIMEOUT,
  DEFAULT_MAX_BUFFERED_AMOUNT,
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_PING_INTERVAL,
  DEFAULT_PING_TIMEOUT,
  DEFAULT_WS_HIGH_WATER_MARK,
} from './websocket/options.js';
export type {
  SendMessageOptions,
  WebSocketProtocolClass,
  WebSocketTransport,
} from './websocket/protocol.js';
export { WebSocketFactory, WebSocketProtocol } from './websocket/protocol.js';
export type { WebSocketRequestInit } from './websocket/request-info.js';
export { WebSocketRequestInfo } from './websocket/request-info.js';
export type { WebSocketResourceOptions } from './websocket/resource.js';
export { WebSocketResource } from './websocket/resource.js';
