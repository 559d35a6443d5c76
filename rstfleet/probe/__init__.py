"""Builds the probe script pushed to hosts: the modules of rstfleet.probe.host in one stdin payload.

Nothing is copied to the host's disk. The payload installs a tiny in-memory importer for the
package name `rstprobe`, so the modules keep their ordinary relative imports and stay testable
here as rstfleet.probe.host.*.
"""

from __future__ import annotations

import functools
from pathlib import Path

HOST_PACKAGE_DIR = Path(__file__).with_name("host")
# -I: ignore the host's PYTHON* environment and user site; -B: never write .pyc files.
PYTHON_ARGV = ["python3", "-I", "-B", "-"]
# A probe started before the go (--start-on-stdin, host/go.py) cannot read its script to EOF: the
# go line follows it on the same stdin. This fixed reader, the command line's only code, reads
# exactly N bytes (its first argument) with os.read, so not one byte of the go line is buffered,
# and runs them as the script; N is ours, never host text.
GO_READER = ("import os,sys\nn=int(sys.argv.pop(1));s=b''\nwhile len(s)<n:\n c=os.read(0,n-len(s))\n"
             " if not c:sys.exit('rstprobe: the probe script was cut short')\n s+=c\n"
             "exec(compile(s,'<rstprobe>','exec'))")

_BOOTSTRAP = '''\
import sys
from importlib.machinery import ModuleSpec
_SOURCES = %(sources)r


class _InMemory(object):
    """Serves the rstprobe package from the strings above (importlib.abc costs ~17 ms to import)."""

    def find_spec(self, fullname, path=None, target=None):
        key = "__init__" if fullname == "rstprobe" else fullname[len("rstprobe."):]
        if (fullname == "rstprobe" or fullname.startswith("rstprobe.")) and key in _SOURCES:
            spec = ModuleSpec(fullname, self, is_package=fullname == "rstprobe")
            if fullname == "rstprobe":
                spec.submodule_search_locations = []
            return spec
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        key = "__init__" if module.__name__ == "rstprobe" else module.__name__[len("rstprobe."):]
        exec(compile(_SOURCES[key], "<rstprobe/%%s.py>" %% key, "exec"), module.__dict__)


sys.meta_path.insert(0, _InMemory())
from rstprobe.main import main
sys.exit(main(sys.argv[1:]))
'''


CORE_MODULES = ("__init__", "counters", "facts", "limits", "main")
# probe option -> the extra modules it imports on the host
TRACE_MODULES = ("tracefs", "traceformat", "tally")
OPTION_MODULES = {"--trace": TRACE_MODULES, "--trace-auto": TRACE_MODULES, "--capture": ("capture",) + TRACE_MODULES, "--owners": ("owners",),
                  "--netdata": ("netdata",), "--baseline": ("exact",), "--start-on-stdin": ("go",), "--check": ("check",) + TRACE_MODULES}
# options a host without python3 may go without: the shell probe serves it, with no Netdata verdict
# and no attribution (--trace-auto is the default sweep's: attribute where the kernel allows)
BEST_EFFORT_OPTIONS = (("--netdata", "auto"), ("--netdata", "off"), ("--trace-auto",))


def needs_python(options) -> bool:
    """Whether these probe options need the Python probe; ``--netdata auto`` or ``--trace-auto``
    alone do not (best effort: a host without python3 still gets its counters from the shell probe)."""
    options, rest = list(options), []
    while options:
        best_effort = next((len(o) for o in BEST_EFFORT_OPTIONS if tuple(options[:len(o)]) == o), 0)
        if best_effort:
            del options[:best_effort]
        else:
            rest.append(options.pop(0))
    return bool(rest)


@functools.lru_cache(maxsize=None)
def probe_script(modules: tuple[str, ...] | None = None) -> bytes:
    """The probe as one Python script (bytes), ready for `python3 -I -B -` on stdin.

    modules: the host modules to ship (default: all). Python parses the whole payload before it
    runs, so a plain sweep ships only what it uses.
    """
    sources = {
        path.stem: path.read_text(encoding="utf-8")
        for path in sorted(HOST_PACKAGE_DIR.glob("*.py"))
        if modules is None or path.stem in modules
    }
    return (_BOOTSTRAP % {"sources": sources}).encode("utf-8")


def probe_script_for(options: tuple[str, ...] | list[str]) -> bytes:
    """The smallest payload that serves these probe options."""
    wanted = set(CORE_MODULES)
    for option in options:
        wanted.update(OPTION_MODULES.get(option, ()))
    return probe_script(tuple(sorted(wanted)))


def probe_argv(window_s: float, extra: list[str] | None = None, python: str | None = None,
               script_bytes: int | None = None) -> list[str]:
    """The remote command line; every argument is ours or the inventory's interpreter path, never
    text from a host or a secret (transports quote it for the remote shell). ``script_bytes``:
    the script is that long and more follows it on stdin (GO_READER)."""
    reader = PYTHON_ARGV[1:] if script_bytes is None else PYTHON_ARGV[1:3] + ["-c", GO_READER, str(script_bytes)]
    return [python or PYTHON_ARGV[0]] + reader + ["--window", repr(float(window_s))] + list(extra or [])
