"""AMP commands shared by the interop scripts; test/amp-interop.test.ts declares
the same commands in TypeScript (the torsion side)."""

from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


class EchoLists(amp.Command):
    arguments = [
        (b"numbers", amp.ListOf(amp.Integer())),
        (b"words", amp.ListOf(amp.Unicode())),
        (b"items", amp.AmpList([(b"name", amp.Unicode()), (b"count", amp.Integer()),
                                (b"note", amp.Unicode(optional=True))])),
    ]
    response = arguments


class EchoDateTime(amp.Command):
    arguments = [(b"when", amp.DateTime())]
    response = [(b"when", amp.DateTime())]


_ALL = [
    (b"i", amp.Integer()),
    (b"s", amp.String()),
    (b"u", amp.Unicode()),
    (b"b", amp.Boolean()),
    (b"x", amp.Float()),
    (b"d", amp.Decimal()),
    (b"t", amp.DateTime()),
    (b"p", amp.Path()),
    (b"nested", amp.ListOf(amp.ListOf(amp.Integer()))),
    (b"opt", amp.Integer(optional=True)),
]


class EchoAll(amp.Command):
    arguments = _ALL
    response = _ALL


class Boom(amp.Command):
    """The responder raises an error the command does not declare."""
    response = [(b"x", amp.Integer())]


class Melt(amp.Command):
    """The responder raises a declared fatal error."""
    fatalErrors = {OverflowError: b"OVERHEATED"}


class Notify(amp.Command):
    arguments = [(b"message", amp.Unicode())]
    requiresAnswer = False


class GetNotes(amp.Command):
    response = [(b"notes", amp.ListOf(amp.Unicode()))]


class CallMeBack(amp.Command):
    """The responder calls Sum(a, b) back on the asking side and returns its total,
    then calls Mystery (unknown to the asking side) and returns the error code."""
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer()), (b"mystery", amp.Unicode())]


class Mystery(amp.Command):
    """Known to the Twisted side only."""
    response = [(b"x", amp.Integer())]


class Missing(amp.Command):
    """No responder anywhere: answered UNHANDLED."""
