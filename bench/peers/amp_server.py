"""Twisted side of the AMP benchmark: an AMP server answering Sum.

    /usr/bin/python3 bench/peers/amp_server.py

Listens on 127.0.0.1 (a free port), prints "amp server listening on 127.0.0.1:PORT",
and stops on SIGINT/SIGTERM.
"""

import sys

from twisted.internet import protocol, reactor
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Calculator(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}


port = reactor.listenTCP(0, protocol.Factory.forProtocol(Calculator), interface="127.0.0.1")
sys.stdout.write("amp server listening on 127.0.0.1:%d\n" % (port.getHost().port,))
sys.stdout.flush()
reactor.run()
