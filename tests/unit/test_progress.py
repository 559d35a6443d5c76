"""The live progress line at 10,000 hosts: one line that fits a terminal, redrawn a bounded number
of times however fast results arrive, ending on the true count."""

from __future__ import annotations

import io

from rstfleet.results import HostResult, Status
from rstfleet.sweep.progress import Progress


class Counting(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


def test_ten_thousand_results_in_a_burst_redraw_a_few_times_and_end_on_the_true_count():
    stream = Counting()
    progress = Progress(10_000, window_s=10.0, stream=stream)
    for i in range(10_000):
        progress.on_result(HostResult(f"h{i}", "127.0.0.1", Status.OK if i % 250 else Status.TIMEOUT))
    assert stream.writes < 50
    assert progress.line() == "10,000/10,000 done, 40 failed, 0 running"
    assert stream.getvalue().rstrip().endswith("10,000/10,000 done, 40 failed, 0 running")


def test_the_line_fits_eighty_columns_mid_window_and_close_erases_it():
    stream = Counting()
    progress = Progress(10_000, window_s=10.0, stream=stream)
    progress.on_result(HostResult("h1", "127.0.0.1", Status.OK))
    progress._draw()
    assert len(progress.line()) <= 80 and "9,999 running" in progress.line()
    progress.close()
    assert stream.getvalue().endswith("\r" + " " * len(progress.line()) + "\r") or stream.getvalue().endswith("\r")
