/**
 * The web layer: the HTTP/1.1 server, resources and sites, the async app
 * gateway and WebSockets. It arrives with the HTTP server issue; this entry
 * point exists now so the `torsion/web` subpath is stable from the start.
 *
 * @module torsion/web
 */

export {};
