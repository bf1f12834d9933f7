"""A Twisted AMP server for torsion's interop tests.

Run with Debian's python3-twisted: /usr/bin/python3 amp_server.py
Listens on 127.0.0.1 (a free port), prints "PORT <n>" on stdout, and exits
when its stdin closes.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from twisted.internet import protocol, reactor, stdio  # noqa: E402
from twisted.protocols import amp  # noqa: E402

from amp_commands import (  # noqa: E402
    Boom, CallMeBack, Divide, EchoAll, EchoDateTime, EchoLists, GetNotes, Melt,
    Mystery, Notify, Sum,
)

notes = []


class Server(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Divide.responder
    def divide(self, numerator, denominator):
        return {"result": numerator / denominator}

    @EchoLists.responder
    def echo_lists(self, numbers, words, items):
        return {"numbers": numbers, "words": words, "items": items}

    @EchoDateTime.responder
    def echo_datetime(self, when):
        return {"when": when}

    @EchoAll.responder
    def echo_all(self, **kw):
        return kw

    @Boom.responder
    def boom(self):
        raise RuntimeError("kaboom")

    @Melt.responder
    def melt(self):
        raise OverflowError("too hot")

    @Notify.responder
    def notify(self, message):
        notes.append(message)
        return {}

    @GetNotes.responder
    def get_notes(self):
        return {"notes": list(notes)}

    @CallMeBack.responder
    def call_me_back(self, a, b):
        d = self.callRemote(Sum, a=a, b=b)

        def got_total(answer):
            m = self.callRemote(Mystery)
            m.addCallbacks(
                lambda r: {"total": answer["total"], "mystery": "answered %r" % (r,)},
                lambda f: {"total": answer["total"],
                           "mystery": "%s: %s" % (f.type.__name__, f.getErrorMessage())},
            )
            return m

        return d.addCallback(got_total)


class StdinWatcher(protocol.Protocol):
    def connectionLost(self, reason):
        if reactor.running:
            reactor.stop()


factory = protocol.Factory.forProtocol(Server)
port = reactor.listenTCP(0, factory, interface="127.0.0.1")
sys.stdout.write("PORT %d\n" % (port.getHost().port,))
sys.stdout.flush()
stdio.StandardIO(StdinWatcher())
reactor.run()
