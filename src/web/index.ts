/**
 * The web layer: the HTTP/1.1 server (`HTTPChannel` over torsion's own strict
 * parser), requests with flow-controlled bodies, resources and sites, static
 * files, the async app gateway (`AppResource`), fetch apps (`FetchResource`)
 * and WebSockets (`WebSocketResource`).
 *
 * @module torsion/web
 */

export * from './app.js';
export * from './errors.js';
export * from './fetch.js';
export { BodyDiscardedError, RequestBody } from './http/body.js';
export type { HTTPChannelOptions } from './http/channel.js';
export { HTTPChannel } from './http/channel.js';
export { ChunkedDecoder, encodeChunk, encodeLastChunk } from './http/chunked.js';
export type { ParseErrorCode, ParseErrorKind } from './http/errors.js';
export { HTTPError, HTTPParseError, InvalidHeaderError, ParserStateError } from './http/errors.js';
export type { HeadersInit } from './http/headers.js';
export { Headers } from './http/headers.js';
export type { ParserHandler, ParserOptions, RequestHead, TargetForm } from './http/parser.js';
export { RequestParser } from './http/parser.js';
export { ContentLengthMismatch, Request } from './http/request.js';
export { reasonPhrase, STATUS_CODES, statusHasNoBody } from './http/status.js';
export type {
  CookieOptions,
  IBodySink,
  IRequest,
  IRequestBody,
  IResource,
  RenderResult,
} from './iweb.js';
export { NOT_DONE_YET } from './iweb.js';
export * from './resource.js';
export type { SiteOptions } from './site.js';
export { combinedLogLine, Session, Site } from './site.js';
export type { FileOptions } from './static.js';
export { File } from './static.js';
export * from './websocket.js';
