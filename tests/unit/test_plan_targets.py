"""The targets a Plan resolved before any connection: the transports connect with them, and
nothing the resolution keeps for speed (the passwd entry, the checked targets) carries over to
another Plan, another ssh_config, another environment or another user.

Plans are built from real argv with the CLI's own parser and real ssh_config files; transports
are made as the sweep makes them (Transports(plan.ssh)(host)), which opens no connection.
"""

from __future__ import annotations

import os
import pwd
import socket
from dataclasses import replace

import pytest

from rstfleet.cli import build_parser
from rstfleet.inventory import Host
from rstfleet.plan import Plan
from rstfleet.transport import transport_factory
from rstfleet.transport.ssh_config import is_address, load_client_config
from rstfleet.transport.ssh_config_file import local_user, user_home
from rstfleet.transport.target import hop_host, resolve_target

HOSTS = [Host("web1", "web1.example"), Host("db1", "198.51.100.7", user="dba")]


def plan_for(config, *argv: str) -> Plan:
    args = build_parser().parse_args(["sweep", "--ssh-config", str(config), *argv])
    return Plan.from_args(dict(vars(args), triage=False), hosts=HOSTS)


def fresh(plan: Plan, host: Host):
    """What resolving anew gives: the settings without the checked targets, the file read again."""
    return resolve_target(host, replace(plan.ssh, targets={}), load_client_config(plan.ssh.ssh_config_path))


def test_the_transports_connect_with_the_targets_the_plan_checked_and_they_equal_a_fresh_resolution(tmp_path):
    config = tmp_path / "config"
    config.write_text("Host web1.example\n  ProxyJump ann@bastion:2222\nHost *\n  Port 2200\n"
                      "  UserKnownHostsFile %d/kh_%h\n")
    plan = plan_for(config)
    with transport_factory(plan.ssh) as transports:
        for host in HOSTS:
            made = transports(host).target
            assert made is resolve_target(host, plan.ssh, None)      # the one the preflight made
            assert made == fresh(plan, host)
        hop = resolve_target(hop_host("ann@bastion:2222"), transports.settings, transports.config)
        assert (hop.user, hop.port) == ("ann", 2222)
        assert any(hop is checked for checked in plan.ssh.targets.values())
    assert made.known_hosts_files == [f"{user_home()}/kh_198.51.100.7"]


def test_two_plans_in_one_process_each_read_their_own_ssh_config_and_a_rewritten_file_is_read_anew(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("Host *\n  Port 1111\n  User from-first\n")
    second.write_text("Host *\n  Port 2222\n")
    one, two = plan_for(first), plan_for(second)
    first.write_text("Host *\n  Port 3333\n")
    again = plan_for(first)
    web1 = HOSTS[0]
    with transport_factory(one.ssh) as made_one, transport_factory(two.ssh) as made_two, \
            transport_factory(again.ssh) as made_again:
        assert (made_one(web1).target.port, made_one(web1).target.user) == (1111, "from-first")
        assert (made_two(web1).target.port, made_two(web1).target.user) == (2222, local_user())
        assert (made_again(web1).target.port, made_again(web1).target.user) == (3333, local_user())


def test_settings_changed_after_the_plan_are_resolved_afresh_not_from_its_targets(tmp_path):
    config = tmp_path / "config"
    config.write_text("Host *\n  User from-config\n")
    plan = plan_for(config)
    web1 = HOSTS[0]
    assert resolve_target(web1, plan.ssh, None).user == "from-config"
    assert resolve_target(web1, replace(plan.ssh, user="from-cli"), None).user == "from-cli"


def test_an_environment_variable_changed_between_two_plans_gives_each_its_own_path(tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.write_text("Host *\n  UserKnownHostsFile ${RSTFLEET_KH_DIR}/known_hosts\n")
    monkeypatch.setenv("RSTFLEET_KH_DIR", "/first")
    one = plan_for(config)
    monkeypatch.setenv("RSTFLEET_KH_DIR", "/second")
    two = plan_for(config)
    web1 = HOSTS[0]
    assert resolve_target(web1, one.ssh, None).known_hosts_files == ["/first/known_hosts"]
    assert resolve_target(web1, two.ssh, None).known_hosts_files == ["/second/known_hosts"]


def test_the_passwd_entry_is_the_current_uids_so_another_user_gets_their_own_home(tmp_path, monkeypatch):
    """A fake uid: switching users for real needs root (setuid), which tests/unit never has, so
    os.getuid is replaced; the passwd entries read are the machine's real ones."""
    me = pwd.getpwuid(os.getuid())
    other = next((e for e in pwd.getpwall() if e.pw_uid != me.pw_uid and e.pw_dir != me.pw_dir), None)
    assert other is not None, "this machine's passwd has a second user with another home"
    config = tmp_path / "config"
    config.write_text("Host *\n  UserKnownHostsFile %d/kh_%u\n")
    mine = plan_for(config)
    monkeypatch.setattr(os, "getuid", lambda: other.pw_uid)
    theirs = plan_for(config)
    web1 = HOSTS[0]
    assert (user_home(), local_user()) == (other.pw_dir, other.pw_name)
    assert resolve_target(web1, mine.ssh, None).known_hosts_files == [f"{me.pw_dir}/kh_{me.pw_name}"]
    assert resolve_target(web1, theirs.ssh, None).known_hosts_files == [f"{other.pw_dir}/kh_{other.pw_name}"]


def test_without_a_passwd_entry_home_follows_HOME_each_time(monkeypatch):
    """A fake uid no passwd entry has (making such a process needs root): the fallback to $HOME
    is read on every call, never kept."""
    used = {e.pw_uid for e in pwd.getpwall()}
    monkeypatch.setattr(os, "getuid", lambda: next(u for u in range(4_000_000_000, 4_000_001_000) if u not in used))
    monkeypatch.setenv("HOME", "/first-home")
    assert user_home() == "/first-home"
    monkeypatch.setenv("HOME", "/second-home")
    assert user_home() == "/second-home"


@pytest.mark.parametrize("name", ["127.0.0.1", "198.51.100.7", "255.255.255.255", "1.2.3.256", "08.1.1.1",
                                  "010.1.1.1", "127.1", "1", "0x7f.1", "0X1F", "1.2.3.4.", "1e", "Web1",
                                  "db-01.example", "fe80::1%eth0", "::ffff:1.2.3.4", "2001:DB8::1",
                                  "1.2.3.4 junk", "", "a:b"])
def test_is_address_answers_as_getaddrinfo_with_numeric_host_does(name):
    """The shortcuts (names with a letter no address form has, plain dotted quads) against the
    call they stand in for."""
    try:
        socket.getaddrinfo(name, None, flags=socket.AI_NUMERICHOST)
        expected = True
    except (socket.gaierror, UnicodeError, ValueError):
        expected = False
    assert is_address(name) is expected
