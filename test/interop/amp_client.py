"""A Twisted AMP client for torsion's interop tests: calls every command of a
torsion AMP server and prints what it got as one JSON object on stdout.

Run with Debian's python3-twisted: /usr/bin/python3 amp_client.py PORT [CERT.pem]

With CERT.pem (the torsion server's certificate), it also starts TLS on a
fresh connection (trusting that certificate) and calls Sum over it.
"""

import datetime
import decimal
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from twisted.internet import defer, protocol, reactor, ssl, task  # noqa: E402
from twisted.protocols import amp  # noqa: E402
from twisted.python._tzhelper import FixedOffsetTimeZone  # noqa: E402
from twisted.python.filepath import FilePath  # noqa: E402

from amp_commands import (  # noqa: E402
    Boom, CallMeBack, Divide, EchoAll, EchoDateTime, EchoLists, GetNotes, Melt,
    Missing, Notify, Sum,
)


class Client(amp.AMP):
    """Answers the server's call-backs: Sum yes, Mystery no (UNHANDLED)."""

    def __init__(self):
        super().__init__()
        self.lost = defer.Deferred()

    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.lost.callback(reason.type.__name__)


def describe_failure(f):
    value = f.value
    out = {"error": type(value).__name__, "message": str(value)}
    for attr in ("errorCode", "description"):
        v = getattr(value, attr, None)
        if v is not None:
            out[attr] = v.decode("latin1") if isinstance(v, bytes) else v
    return out


def dt_text(dt):
    return amp.DateTime().toString(dt).decode("ascii")


async def connect(port):
    return await protocol.ClientCreator(reactor, Client).connectTCP("127.0.0.1", port)


async def main(port, cert_path):
    out = {}
    c = await connect(port)

    out["sum"] = (await c.callRemote(Sum, a=13, b=81))["total"]
    out["divide"] = repr((await c.callRemote(Divide, numerator=1, denominator=3))["result"])
    try:
        await c.callRemote(Divide, numerator=1, denominator=0)
        out["divide_zero"] = "no error"
    except Exception:
        out["divide_zero"] = describe_failure(defer.Failure())

    lists = await c.callRemote(
        EchoLists,
        numbers=[1, -2, 3000000000],
        words=["a", "", "caf\u00e9"],
        items=[{"name": "x", "count": 1}, {"name": "y", "count": 2, "note": "n"}],
    )
    out["lists"] = lists

    when = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456,
                             tzinfo=FixedOffsetTimeZone.fromSignHoursMinutes("-", 5, 30))
    out["datetime"] = dt_text((await c.callRemote(EchoDateTime, when=when))["when"])

    everything = await c.callRemote(
        EchoAll,
        i=-(2 ** 40), s=b"\x00\xffbytes", u="snow \u2603", b=False, x=float("-inf"),
        d=decimal.Decimal("3.1400"), t=datetime.datetime(1, 1, 1, tzinfo=amp.utc),
        p=FilePath("/tmp/some where"), nested=[[1], [], [2, 3]],
    )
    out["all"] = {
        "i": everything["i"], "s": everything["s"].hex(), "u": everything["u"],
        "b": everything["b"], "x": repr(everything["x"]), "d": str(everything["d"]),
        "t": dt_text(everything["t"]), "p": everything["p"].path,
        "nested": everything["nested"], "opt": everything["opt"],
    }

    c.callRemote(Notify, message="first")
    c.callRemote(Notify, message="second")
    out["notes"] = (await c.callRemote(GetNotes))["notes"]

    out["callback"] = await c.callRemote(CallMeBack, a=20, b=22)

    try:
        await c.callRemote(Missing)
        out["missing"] = "no error"
    except Exception:
        out["missing"] = describe_failure(defer.Failure())

    # 1000 calls in flight at once.
    results = await defer.gatherResults([c.callRemote(Sum, a=i, b=i) for i in range(1000)])
    out["concurrent_ok"] = all(r["total"] == 2 * i for i, r in enumerate(results))

    # A declared fatal error: answered, then the server closes the connection.
    try:
        await c.callRemote(Melt)
        out["melt"] = "no error"
    except Exception:
        out["melt"] = describe_failure(defer.Failure())
    out["melt_closed"] = await c.lost

    # An undeclared error: UNKNOWN, then the server closes the connection.
    c = await connect(port)
    try:
        await c.callRemote(Boom)
        out["boom"] = "no error"
    except Exception:
        out["boom"] = describe_failure(defer.Failure())
    out["boom_closed"] = await c.lost

    if cert_path is not None:
        with open(cert_path, "rb") as f:
            authority = ssl.Certificate.loadPEM(f.read())
        c = await connect(port)
        answer = await c.callRemote(amp.StartTLS, tls_verifyAuthorities=[authority])
        total = (await c.callRemote(Sum, a=20, b=22))["total"]
        peer = c.transport.getPeerCertificate()
        out["starttls"] = {
            "answer": sorted(answer),
            "sum": total,
            "peer_cn": peer.get_subject().CN if peer is not None else None,
        }
        c.transport.loseConnection()
        await c.lost
    return out


def run(reactor_, port, cert_path=None):
    d = defer.ensureDeferred(main(port, cert_path))
    d.addCallback(lambda out: sys.stdout.write(json.dumps(out) + "\n"))
    return d


if __name__ == "__main__":
    task.react(run, [int(sys.argv[1])] + sys.argv[2:3])
