"""Twisted side of the AMP benchmark's load: one connection, --calls Sum calls
with at most --window in flight, after a warm-up; prints "calls/s N" (the best
of --rounds runs).

    /usr/bin/python3 bench/peers/amp_client.py --port PORT [--calls 20000] [--window 100] [--rounds 5]
"""

import argparse
import time

from twisted.internet import defer, protocol, reactor, task
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


def measure(client, calls, window):
    done = defer.Deferred()
    state = {"sent": 0, "answered": 0}
    start = time.perf_counter()

    def on_answer(answer, expected):
        if answer["total"] != expected:
            raise ValueError("bad total")
        state["answered"] += 1
        if state["sent"] < calls:
            send()
        elif state["answered"] == calls:
            done.callback(calls / (time.perf_counter() - start))

    def send():
        a = state["sent"]
        state["sent"] += 1
        client.callRemote(Sum, a=a, b=1).addCallback(on_answer, a + 1).addErrback(done.errback)

    for _ in range(min(window, calls)):
        send()
    return done


async def main(reactor_, args):
    client = await protocol.ClientCreator(reactor, amp.AMP).connectTCP(args.host, args.port)
    await measure(client, min(args.calls, 5000), args.window)
    best = 0.0
    for _ in range(args.rounds):
        best = max(best, await measure(client, args.calls, args.window))
    print("calls/s %f" % best, flush=True)
    client.transport.loseConnection()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    task.react(lambda r: defer.ensureDeferred(main(r, parser.parse_args())))
