"""What a held session costs, host by host, decides how many fit in one window (sweep/sessions.py):
one descriptor for an SSH socket, a ProxyCommand's or a local host's three pipes, paramiko's reader
thread. Counted as 3 descriptors a session before, 10,000 hosts were split into two window groups
under this machine's 20,000 hard limit although they need about 10,100 (bench/simfleet_bench.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rstfleet.inventory import Host
from rstfleet.sweep import sessions
from rstfleet.transport import SSHSettings, transport_factory

ROOT = Path(__file__).resolve().parents[2]


def test_the_transports_say_what_a_session_to_each_host_costs(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host via-proxy\n  ProxyCommand nc %h %p\n")
    fleet = [Host("a", "192.0.2.1"), Host("b", "via-proxy"), Host("c", "192.0.2.3", proxy_command="nc %h %p"),
             Host("me", "localhost", connection="local")]
    with transport_factory(SSHSettings(ssh_config_path=str(config))) as transports:
        assert [transports.session_cost(h) for h in fleet] == [(1, 1), (3, 1), (3, 1), (3, 0)]
        cost = sessions.fleet_session_cost(fleet, transports)
    assert cost == sessions.SessionCost(descriptors=10 / 4, threads=1 + 3 / 4)


def test_a_fleet_of_plain_ssh_hosts_fits_the_open_file_limit_at_one_descriptor_a_session():
    """In a child whose hard limit is 1,000 descriptors: 936 SSH sessions fit (1 each, 64 kept),
    where the old count of 3 allowed 312 and split a 900-host fleet into three window groups."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (1000, 1000));"
            "from rstfleet.inventory import Host; from rstfleet.sweep import sessions as s;"
            "from rstfleet.transport import SSHSettings, transport_factory;"
            "hosts = [Host(f'h{i}', f'192.0.2.{i % 250 + 1}') for i in range(900)];"
            "t = transport_factory(SSHSettings(ssh_config_path='none'));"
            "print(s.session_limit(900, cost=s.fleet_session_cost(hosts, t)).sessions,"
            " s.session_limit(2000, cost=s.fleet_session_cost(hosts, t)).sessions,"
            " s.session_limit(900).sessions)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    fitted, capped, counted_as_three = map(int, out.stdout.split())
    assert fitted == 900
    assert capped == 1000 - sessions.FDS_RESERVED
    assert counted_as_three == (1000 - sessions.FDS_RESERVED) // 3


def test_a_transport_that_cannot_say_is_counted_at_the_old_safe_cost():
    assert sessions.fleet_session_cost([Host("a", "192.0.2.1")], lambda host: None) == sessions.SessionCost()

    class Broken:
        def session_cost(self, host):
            raise RuntimeError("no target")

    assert sessions.fleet_session_cost([Host("a", "192.0.2.1")], Broken()) == sessions.SessionCost()


@pytest.mark.parametrize("per_session, expected", [(1.0, 136), (2.5, 54)])
def test_the_thread_room_divides_by_the_fleets_threads_a_session(tmp_path, per_session, expected):
    """A /proc tree (the real threads-max cannot be made small): 1,000 threads max, 608 running."""
    (tmp_path / "sys" / "kernel").mkdir(parents=True)
    (tmp_path / "sys" / "kernel" / "threads-max").write_text("1000\n")
    (tmp_path / "loadavg").write_text("0.00 0.00 0.00 1/608 1\n")
    room, why = sessions._thread_room(str(tmp_path), per_session)
    assert room == expected and "threads-max 1000" in why


def test_the_paramiko_engine_holds_at_most_its_ceiling_and_says_how_to_lift_it():
    """Measured on the simulated fleet (docs/benchmarks.md): paramiko holding 1,000 sessions, all
    ok; 2,000, 640 ok; 5,000, none. The event loop has no such ceiling."""
    from rstfleet.probe.host.limits import PARAMIKO_MAX_SESSIONS
    with transport_factory(SSHSettings(ssh_config_path="none")) as paramiko_engine:
        ceiling = paramiko_engine.session_ceiling()
    with transport_factory(SSHSettings(ssh_config_path="none", engine="asyncssh")) as loop_engine:
        assert loop_engine.session_ceiling() is None
    assert ceiling[0] == PARAMIKO_MAX_SESSIONS and "pip install 'rstfleet[fleet]'" in ceiling[1]
    limit = sessions.session_limit(PARAMIKO_MAX_SESSIONS * 2 + 1, cost=sessions.SessionCost(1, 2), ceiling=ceiling)
    assert (limit.sessions, limit.reason) == (PARAMIKO_MAX_SESSIONS, ceiling[1])
    assert sessions.session_limit(10, cost=sessions.SessionCost(1, 2), ceiling=ceiling).sessions == 10
