"""The garbage collector's thresholds raised only while the fan-out runs (sweep/gc_policy.py):
at 1,000 simulated hosts 559 young / 51 middle / 4 full collections became 182 / 16 / 0
(docs/benchmarks.md); afterwards, and after Ctrl-C, the collector is as it was."""

from __future__ import annotations

import gc

import pytest

from rstfleet.probe.host.limits import FANOUT_GC_YOUNG
from rstfleet.sweep.gc_policy import fewer_collections


def test_the_collector_runs_less_often_during_a_fan_out_and_as_before_after_it():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] >= FANOUT_GC_YOUNG and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with pytest.raises(KeyboardInterrupt), fewer_collections():
        raise KeyboardInterrupt
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
