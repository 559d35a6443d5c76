"""The go: a probe started right after its host's handshake waits for one line on stdin.

Why: the orchestrator reaches hosts one after another; starting each probe only once every host
is reached made the start an exec burst (a channel, a 40 KB payload and a Python start-up per
host: 11 s for 500 lab hosts), so the windows began seconds apart. Started at connect time with
`--start-on-stdin`, the probe does all its set-up, then reads

    go 1764400000.250 0.412\\n      <- the fleet's common start (--start-at) and --start-in

and waits for that instant as before (limits.start_wait_s). EOF (the session was closed: Ctrl-C,
the orchestrator killed), a line that is not a go, or none within MAX_START_WAIT_S: the probe
stops at once (exit NO_GO_EXIT), its finally-blocks removing what it set up.
"""

import os
import select
import sys
import time

from .limits import MAX_START_WAIT_S, NO_GO_EXIT

GO_LINE_MAX = 128


class NoGo(Exception):
    """No go came: the reason, for stderr."""


def await_go(fd=0, timeout_s=MAX_START_WAIT_S, clock=time.monotonic):
    """(start_at, start_in) from the go line on ``fd``; raises NoGo.

    Reads with os.read, never through sys.stdin's buffer: the bytes before the line are the
    script, read by the reader in the command line (probe/__init__.py's GO_READER)."""
    end, line = clock() + timeout_s, b""
    while not line.endswith(b"\n"):
        left = end - clock()
        if left <= 0:
            raise NoGo("no go from the orchestrator within %g s" % timeout_s)
        if not select.select([fd], [], [], min(left, 1.0))[0]:
            continue
        chunk = os.read(fd, GO_LINE_MAX)
        if not chunk:
            raise NoGo("the orchestrator closed the session before the go")
        line += chunk
        if len(line) > GO_LINE_MAX:
            raise NoGo("the go line is too long")
    return parse_go(line)


def go_or_exit():
    """await_go(), or exit NO_GO_EXIT with the reason on stderr: SystemExit unwinds through the
    caller's finally-blocks (the trace instance is removed) and ends the interpreter."""
    try:
        return await_go()
    except NoGo as exc:
        sys.stderr.write("rstprobe: %s; exiting without measuring\n" % exc)
        raise SystemExit(NO_GO_EXIT)


def parse_go(line):
    """`go EPOCH START_IN` -> (EPOCH, START_IN).

    >>> parse_go(b"go 1000.5 0.25\\n")
    (1000.5, 0.25)
    """
    words = line.decode("ascii", "replace").split()
    try:
        if len(words) == 3 and words[0] == "go":
            start_at, start_in = float(words[1]), float(words[2])
            if start_at >= 0 and 0 <= start_in <= MAX_START_WAIT_S:
                return start_at, start_in
    except ValueError:
        pass
    raise NoGo("not a go line: %r" % line[:40])
