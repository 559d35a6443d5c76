#!/usr/bin/env python3
"""Replay saved inputs through their target and show what happens.

    .venv/bin/python fuzz/reproduce.py fuzz/crashes/probe-1a2b3c4d5e.bin [--target probe]

The target is taken from the file name (``<target>-...``) unless --target says otherwise; a
probe document is replayed in both orders the controller uses (triage: assess the document as
received; sweep: store the capture, then assess).
Exit status 1 when any input still produces a finding, 0 when all are accepted or rejected
with the documented error.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("inputs", nargs="+")
    p.add_argument("--target", choices=harness.TARGETS)
    p.add_argument("-q", "--quiet", action="store_true", help="no tracebacks, one line per run")
    opts = p.parse_args(argv)
    status = 0
    for name in opts.inputs:
        target = opts.target or Path(name).name.split("-", 1)[0]
        data = Path(name).read_bytes()
        # probe documents go both ways the controller takes: triage's phase 1 assesses the raw
        # document, sweep stores the capture first (the fuzz run picks one by the input's CRC)
        runs = ([("triage order", lambda d: harness.probe_case(d, store=False)),
                 ("sweep order", lambda d: harness.probe_case(d, store=True))]
                if target == "probe" else [("", harness.CASES[target])])
        for how, case in runs:
            label = f"{name}: {target}{' (' + how + ')' if how else ''}"
            try:
                print(f"{label}: {case(data)}")
            except Exception as exc:                    # noqa: BLE001
                status = 1
                print(f"{label}: FINDING {harness.signature(exc)}")
                if not opts.quiet:
                    traceback.print_exc()
    harness.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
