#!/usr/bin/env python3
"""Replay saved inputs through their target and show what happens.

    .venv/bin/python fuzz/reproduce.py fuzz/crashes/probe-1a2b3c4d5e.bin [--target probe]

The target is taken from the file name (``<target>-...``) unless --target says otherwise.
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
    opts = p.parse_args(argv)
    status = 0
    for name in opts.inputs:
        target = opts.target or Path(name).name.split("-", 1)[0]
        data = Path(name).read_bytes()
        try:
            outcome = harness.CASES[target](data)
            print(f"{name}: {target}: {outcome}")
        except Exception as exc:                        # noqa: BLE001
            status = 1
            print(f"{name}: {target}: FINDING {harness.signature(exc)}")
            traceback.print_exc()
    harness.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
