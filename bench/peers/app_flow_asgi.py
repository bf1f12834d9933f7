"""The uvicorn peer of bench/app-flow.ts: the same two apps as
bench/peers/app-flow-server.ts, written as plain ASGI, served by Debian's
python3-uvicorn (h11 and asyncio: Debian ships neither httptools nor uvloop).

- ``POST /upload?rate=BYTES_PER_SECOND``: reads the request body with
  ``receive()``, paced so the app consumes at most ``rate`` bytes per second
  (after each message it sleeps until its running total is due), and answers
  JSON stats. uvicorn pauses reading the socket while more than 64 KiB of body
  is waiting for ``receive()``.
- ``GET /download?bytes=N``: sends N bytes (``Content-Length: N``) with
  ``send()`` in a loop, one fresh 64 KiB ``bytes`` per call; uvicorn's ``send``
  awaits the transport's drain while its write buffer is above the high-water
  mark, so a slow reader pauses the loop.

After each request it prints one ``stats {json}`` line on stdout, the same
shape as the torsion server's; first it prints ``listening on
tcp:127.0.0.1:PORT``.
"""

import asyncio
import json
import socket
import sys
import time
from urllib.parse import parse_qs

import uvicorn

CHUNK = 64 * 1024


def emit(stats):
    print('stats ' + json.dumps(stats), flush=True)


def query_int(scope, name, default):
    values = parse_qs(scope['query_string'].decode('latin-1')).get(name)
    return int(values[0]) if values else default


async def upload(scope, receive, send):
    rate = query_int(scope, 'rate', 10 * 1024 * 1024)
    got = 0
    receives = 0
    max_chunk = 0
    start = time.monotonic()
    complete = False
    while True:
        message = await receive()
        if message['type'] == 'http.disconnect':
            break
        body = message.get('body', b'')
        receives += 1
        got += len(body)
        # uvicorn hands over everything it buffered: the largest message is
        # the most body the server held for the app.
        max_chunk = max(max_chunk, len(body))
        if not message.get('more_body', False):
            complete = True
            break
        due = got / rate - (time.monotonic() - start)
        if due > 0:
            await asyncio.sleep(due)
    stats = {
        'scenario': 'upload',
        'bytes': got,
        'complete': complete,
        'gets': receives,
        'maxChunk': max_chunk,
        # What the server held that the app had not taken: uvicorn shows the
        # app the whole buffer on each receive(), so this is the largest one.
        'maxServerBuffered': max_chunk,
        'seconds': time.monotonic() - start,
    }
    emit(stats)
    if not complete:
        return
    payload = json.dumps(stats).encode()
    await send({
        'type': 'http.response.start',
        'status': 200,
        'headers': [
            (b'content-type', b'application/json'),
            (b'content-length', str(len(payload)).encode()),
        ],
    })
    await send({'type': 'http.response.body', 'body': payload})


async def download(scope, receive, send):
    total = query_int(scope, 'bytes', 0)
    await send({
        'type': 'http.response.start',
        'status': 200,
        'headers': [
            (b'content-type', b'application/octet-stream'),
            (b'content-length', str(total).encode()),
        ],
    })
    sent = 0
    sends = 0
    start = time.monotonic()
    while sent < total:
        size = min(CHUNK, total - sent)
        # A fresh object each time (as a real producer makes), so a server
        # that queued them would show it in its RSS.
        await send({
            'type': 'http.response.body',
            'body': bytes((sends & 0xFF,)) * size,
            'more_body': True,
        })
        sent += size
        sends += 1
    await send({'type': 'http.response.body', 'body': b''})
    emit({
        'scenario': 'download',
        'mode': 'send',
        'bytes': sent,
        'puts': sends,
        'seconds': time.monotonic() - start,
    })


async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    if scope['path'] == '/upload' and scope['method'] == 'POST':
        await upload(scope, receive, send)
    elif scope['path'] == '/download' and scope['method'] == 'GET':
        await download(scope, receive, send)
    else:
        await send({
            'type': 'http.response.start',
            'status': 404,
            'headers': [(b'content-length', b'0')],
        })
        await send({'type': 'http.response.body', 'body': b''})


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', 0))
    # Listening before the port is printed: a client that connects before
    # uvicorn's loop starts waits in the backlog instead of being refused.
    sock.listen(128)
    config = uvicorn.Config(
        app,
        loop='asyncio',
        http='h11',
        lifespan='off',
        access_log=False,
        log_level='warning',
    )
    server = uvicorn.Server(config)
    print('listening on tcp:127.0.0.1:%d' % sock.getsockname()[1], flush=True)
    server.run(sockets=[sock])


if __name__ == '__main__':
    sys.exit(main())
