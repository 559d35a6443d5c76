"""`--ssh-engine asyncssh` is a benchmark prototype: refused before any host, so opting in can never
weaken host-key checking, until it checks keys with known_hosts.py's OpenSSH rules."""

from __future__ import annotations

import os

from helpers import run_cli


def test_the_prototype_engine_is_refused_before_any_host_with_the_reason():
    env_before = os.environ.pop("RSTFLEET_PROTOTYPE_ENGINES", None)
    try:
        done = run_cli("sweep", "-i", "198.18.255.250,", "--ssh-engine", "asyncssh", "--window", "0.1")
    finally:
        if env_before is not None:
            os.environ["RSTFLEET_PROTOTYPE_ENGINES"] = env_before
    assert done.returncode == 2
    assert b"--ssh-engine: the asyncssh engine is a benchmark prototype" in done.stderr
    assert b"198.18.255.250" not in done.stderr


def test_the_prototype_engine_module_imports():
    from rstfleet.transport import asyncssh_engine
    assert hasattr(asyncssh_engine, "AsyncSSHTransport")
