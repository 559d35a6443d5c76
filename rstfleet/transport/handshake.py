"""The handshake as a step of its own: connect and authenticate now, run the probe later.

The pool bounds handshakes in flight (`--forks`) apart from the sessions it holds open while the
windows run, so it needs the connection made before ``run()``. A transport offers that with an
optional ``connect(deadline)``; one that connects lazily inside ``run()`` (SSHTransport keeps its
``paramiko.SSHClient`` in ``client`` and makes it with ``_connect(deadline)``) is connected here
the same way ``run()`` would, so its host-key check, timeouts and error statuses are unchanged.
A transport with neither (the local host, test fakes) has no handshake: it is "connected" at once.
"""

from __future__ import annotations


def connect(transport, deadline: float) -> None:
    """Connect and authenticate ``transport`` before ``deadline`` (time.monotonic()); raises the
    transport's own TransportError (unreachable, auth-failed, host-key-rejected, timeout)."""
    opener = getattr(transport, "connect", None)
    if callable(opener):
        opener(deadline)
        return
    lazy = getattr(transport, "_connect", None)
    if callable(lazy) and getattr(transport, "client", False) is None:
        transport.client = lazy(deadline)
