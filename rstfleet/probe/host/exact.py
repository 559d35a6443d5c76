"""--baseline exact: the minute before the window, measured by the probe itself, so rstfleet can
apply Netdata's rule (`1m_…` = average -1m at -10s, against the 10 s window) without an agent.

The probe reads OutRsts about once a second from the minute's start to the window's end; the
minute's figure is the counter's growth up to the window's first snapshot, so minute and window
are contiguous, as in the rule:

    minute_section(..) -> {"measured_s": 60.0, "started_at": 1795962100.0, "OutRsts": 12,
                           "per_s": 0.2, "history": [[1795962101.0, 0.0], ...]}
"""

import time

from .counters import SNMP_PATH, parse_proc_table
from .limits import MAX_HISTORY_POINTS


class OutRstsSampler(object):
    """OutRsts about once a second while the probe waits (--baseline exact): the minute before the
    window and the window itself, as [[epoch seconds, resets sent per second], ...]."""

    def __init__(self, clock=time.monotonic, wall=time.time, path=SNMP_PATH, every_s=1.0):
        self.clock, self.wall, self.path, self.every_s = clock, wall, path, every_s
        self.history = []
        self.last = self._read()
        self.first_out_rsts = self.last[1]

    def _read(self):
        try:
            with open(self.path) as handle:
                value = parse_proc_table(handle.read()).get("Tcp", {}).get("OutRsts")
        except OSError:
            value = None
        return self.clock(), value

    def tick(self):
        """Take a sample if a second has passed since the last one (called from the wait loop)."""
        if self.clock() - self.last[0] < self.every_s:
            return
        now = self._read()
        if now[1] is not None and self.last[1] is not None and now[1] >= self.last[1] and now[0] > self.last[0]:
            self.history.append([round(self.wall(), 3), (now[1] - self.last[1]) / (now[0] - self.last[0])])
            del self.history[:-MAX_HISTORY_POINTS]
        self.last = now


def minute_section(minute_start, minute_first, window_first, elapsed_s, history):
    """The exact baseline: OutRsts over the minute before the window (Netdata's `1m_…` alarm)."""
    out_rsts = None
    if minute_first is not None and window_first is not None and window_first >= minute_first:
        out_rsts = window_first - minute_first
    return {"measured_s": elapsed_s, "started_at": minute_start, "OutRsts": out_rsts,
            "per_s": out_rsts / elapsed_s if out_rsts is not None and elapsed_s > 0 else None,
            "history": history}
