"""Inventory loading: both Ansible formats, ranges, precedence, patterns and precise errors."""
from __future__ import annotations

import ipaddress
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:
    import rstfleet  # noqa: F401
except ImportError:  # the checkout is not installed into the venv; import it from the tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rstfleet.inventory import Host, Inventory, InventoryError, load_inventory, localhost_inventory

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "inventory"
SHIPPED = ROOT / "inventories"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def load_text(tmp_path: Path, name: str, text: str) -> Inventory:
    return load_inventory(write(tmp_path, name, text))


def names(hosts: list[Host]) -> list[str]:
    return [h.name for h in hosts]


# --- the same fleet in both formats -------------------------------------------------------------


def test_yaml_and_ini_of_the_same_fleet_give_equal_hosts():
    yml = load_inventory(str(FIXTURES / "fleet.yml"))
    ini = load_inventory(str(FIXTURES / "fleet.ini"))
    assert list(yml.hosts) == list(ini.hosts)
    assert yml.hosts == ini.hosts
    assert {n: h.vars for n, h in yml.hosts.items()} == {n: h.vars for n, h in ini.hosts.items()}
    assert yml.groups == ini.groups


def test_fleet_fixture_is_interpreted_as_ansible_would():
    inv = load_inventory(str(FIXTURES / "fleet.yml"))
    assert list(inv.hosts) == [
        "bastion", "lba", "lbb", "lbc", "cache01", "cache05", "cache09",
        "web1-a.example.net", "web1-b.example.net", "web2-a.example.net", "web2-b.example.net",
        "localhost",
    ]
    bastion = inv.hosts["bastion"]
    assert (bastion.address, bastion.port, bastion.user) == ("198.18.1.1", 2200, "fleet")
    assert bastion.groups == ("ungrouped",)
    cache05 = inv.hosts["cache05"]
    assert cache05 == Host(
        name="cache05", address="cache05", port=2222, user="fleet", key_file="~/.ssh/cache_ed25519",
        known_hosts_file="/etc/rstfleet/edge_known", groups=("cache", "edge"),
    )
    assert inv.hosts["lba"].vars["tier"] == "lb"  # child group beats parent group
    assert inv.hosts["cache01"].vars["tier"] == "edge"  # parent group beats all
    assert inv.hosts["web1-b.example.net"].vars["tier"] == "all"
    assert inv.hosts["web1-a.example.net"].become is True  # "On" is an Ansible truthy string
    assert inv.hosts["localhost"].connection == "local"
    assert inv.groups["edge"] == ["lba", "lbb", "lbc", "cache01", "cache05", "cache09"]
    assert inv.groups["ungrouped"] == ["bastion", "localhost"]


@pytest.mark.parametrize("name", ["fleet-yaml-noext", "fleet-ini-noext"])
def test_files_without_extension_are_sniffed(name):
    sniffed = load_inventory(str(FIXTURES / name))
    assert sniffed.hosts == load_inventory(str(FIXTURES / "fleet.yml")).hosts


# --- shipped inventories ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yml")) + sorted(SHIPPED.glob("*.ini")), ids=lambda p: p.name)
def test_shipped_inventories_load(path):
    inv = load_inventory(str(path))
    assert inv.hosts
    assert set(inv.groups["all"]) == set(inv.hosts)


def test_shipped_example_fleet_is_the_same_in_yaml_and_ini():
    yml = load_inventory(str(SHIPPED / "example-fleet.yml"))
    ini = load_inventory(str(SHIPPED / "example-fleet.ini"))
    assert yml.hosts == ini.hosts
    assert list(yml.hosts) == ["web01.example.net", "web02.example.net", "web03.example.net", "db1", "db2"]
    assert yml.groups["prod"] == list(yml.hosts)
    assert [h.port for h in yml.hosts.values()] == [None, None, None, None, 2222]
    assert {h.user for h in yml.select("web")} == {"deploy"}
    for db in yml.select("db"):
        assert ipaddress.ip_address(db.address) in ipaddress.ip_network("198.18.0.0/15")
        assert db.become and db.groups == ("db", "prod")


def test_shipped_local_inventory_is_the_implicit_localhost():
    shipped = load_inventory(str(SHIPPED / "local.yml"))
    implicit = localhost_inventory()
    assert shipped.hosts == implicit.hosts
    assert implicit.hosts["localhost"].connection == "local"
    assert implicit.groups == {"all": ["localhost"], "ungrouped": ["localhost"]}


# --- host ranges -----------------------------------------------------------------------------------

RANGES = [
    ("web[01:03]", ["web01", "web02", "web03"]),
    ("web[8:10]", ["web8", "web9", "web10"]),
    ("web[001:100:45]", ["web001", "web046", "web091"]),
    ("db[a:c]", ["dba", "dbb", "dbc"]),
    ("db[X:Z]", ["dbX", "dbY", "dbZ"]),
    ("r[1:2]n[a:b]", ["r1na", "r1nb", "r2na", "r2nb"]),
    ("web[1:3].example.com", ["web1.example.com", "web2.example.com", "web3.example.com"]),
    ("h[:2]", ["h0", "h1", "h2"]),
    ("plain.example.com", ["plain.example.com"]),
]


@pytest.mark.parametrize("pattern, expected", RANGES)
def test_ranges_expand_the_same_in_yaml_and_ini(tmp_path, pattern, expected):
    yml = load_text(tmp_path, "r.yml", f"g:\n  hosts:\n    {pattern}:\n      ansible_user: u\n")
    ini = load_text(tmp_path, "r.ini", f"[g]\n{pattern} ansible_user=u\n")
    assert list(yml.hosts) == expected
    assert yml.hosts == ini.hosts
    assert all(h.user == "u" and h.groups == ("g",) for h in yml.hosts.values())


def test_host_colon_port_sets_the_port(tmp_path):
    inv = load_text(tmp_path, "p.ini", "[web]\nweb[1:2]:2022\n")
    assert [(h.name, h.port) for h in inv.hosts.values()] == [("web1", 2022), ("web2", 2022)]


# --- membership and precedence ---------------------------------------------------------------------


def test_children_make_hosts_members_of_every_ancestor_group(tmp_path):
    inv = load_text(tmp_path, "c.yml", """\
        all:
          children:
            prod:
              children:
                eu:
                  children:
                    web:
                      hosts:
                        web1:
        """)
    assert inv.hosts["web1"].groups == ("eu", "prod", "web")
    assert inv.groups["prod"] == inv.groups["eu"] == inv.groups["web"] == ["web1"]
    assert inv.groups["ungrouped"] == []


def test_variable_precedence_runs_all_then_parent_then_child_then_host(tmp_path):
    inv = load_text(tmp_path, "p.yml", """\
        all:
          vars: {a: all, b: all, c: all, d: all}
          children:
            parent:
              vars: {b: parent, c: parent, d: parent}
              children:
                child:
                  vars: {c: child, d: child}
                  hosts:
                    h1: {d: host}
        """)
    assert {k: inv.hosts["h1"].vars[k] for k in "abcd"} == {"a": "all", "b": "parent", "c": "child", "d": "host"}


def test_precedence_is_by_depth_not_by_order_in_file(tmp_path):
    # The child group's block comes first in the file, yet still beats its parent.
    inv = load_text(tmp_path, "d.ini", """\
        [child]
        h1
        [child:vars]
        role=child
        [parent:vars]
        role=parent
        [parent:children]
        child
        """)
    assert inv.hosts["h1"].vars["role"] == "child"


def test_groups_of_equal_depth_tie_break_by_name(tmp_path):
    inv = load_text(tmp_path, "t.ini", """\
        [zeta]
        h1
        [alpha]
        h1
        [zeta:vars]
        owner=zeta
        [alpha:vars]
        owner=alpha
        """)
    assert inv.hosts["h1"].vars["owner"] == "zeta"  # applied last alphabetically, so it wins
    assert inv.hosts["h1"].groups == ("alpha", "zeta")


def test_host_listed_in_several_groups_is_one_host_with_merged_vars(tmp_path):
    inv = load_text(tmp_path, "m.yml", """\
        web:
          hosts:
            h1: {ansible_port: 2200}
        db:
          hosts:
            h1: {ansible_user: dba}
        """)
    assert list(inv.hosts) == ["h1"]
    assert (inv.hosts["h1"].port, inv.hosts["h1"].user, inv.hosts["h1"].groups) == (2200, "dba", ("db", "web"))


def test_hosts_in_a_real_group_leave_ungrouped(tmp_path):
    inv = load_text(tmp_path, "u.yml", """\
        ungrouped:
          hosts:
            h1:
            h2:
        web:
          hosts:
            h1:
        """)
    assert inv.groups["ungrouped"] == ["h2"]
    assert (inv.hosts["h1"].groups, inv.hosts["h2"].groups) == (("web",), ("ungrouped",))


def test_yaml_merge_keys_and_aliases_work_in_vars(tmp_path):
    inv = load_text(tmp_path, "m.yml", """\
        web:
          vars:
            <<: {ansible_user: ops, ansible_port: 2200}
            ansible_port: 2201
          hosts:
            web1:
            web2: {<<: {ansible_port: 22}}
        """)
    assert [(h.user, h.port) for h in inv.hosts.values()] == [("ops", 2201), ("ops", 22)]


def test_yaml_aliases_reused_at_every_level_do_not_explode(tmp_path):
    # 40 levels that each name the level below twice would be 2**40 group visits if walked naively.
    levels = ["g0: &x0\n  hosts:\n    h1:\n"] + [
        f"g{i}: &x{i}\n  children:\n    p{i}: *x{i - 1}\n    q{i}: *x{i - 1}\n" for i in range(1, 40)
    ]
    inv = load_inventory(write(tmp_path, "bomb.yml", "".join(levels)))
    assert list(inv.hosts) == ["h1"]
    assert "p1" in inv.hosts["h1"].groups and "g39" in inv.hosts["h1"].groups


def test_ini_group_vars_apply_to_children(tmp_path):
    inv = load_text(tmp_path, "g.ini", """\
        [web]
        web1
        [prod:children]
        web
        [prod:vars]
        ansible_user=deploy
        ansible_ssh_private_key_file=/keys/prod
        """)
    assert (inv.hosts["web1"].user, inv.hosts["web1"].key_file) == ("deploy", "/keys/prod")


def test_ini_hosts_before_any_section_are_ungrouped(tmp_path):
    inv = load_text(tmp_path, "u.ini", "loose1\nloose2 ansible_host=198.18.0.9\n[web]\nweb1\n")
    assert inv.groups["ungrouped"] == ["loose1", "loose2"]
    assert inv.hosts["loose2"].address == "198.18.0.9"
    assert inv.hosts["web1"].groups == ("web",)


def test_ini_values_may_be_quoted_and_lines_commented(tmp_path):
    inv = load_text(tmp_path, "q.ini", """\
        ; semicolon comment
        [web]   # header comment
        web1 motd="hello world" ansible_user='ops' # trailing comment
        # web2
        """)
    assert list(inv.hosts) == ["web1"]
    assert inv.hosts["web1"].vars == {"motd": "hello world", "ansible_user": "ops"}


# --- connection facts --------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    "-o UserKnownHostsFile=/kh/fleet",
    "-oUserKnownHostsFile=/kh/fleet",
    "-o UserKnownHostsFile /kh/fleet",
    "-o 'UserKnownHostsFile /kh/fleet'",
    "-o StrictHostKeyChecking=yes -o userknownhostsfile=/kh/fleet -o UserKnownHostsFile=/kh/other",
])
@pytest.mark.parametrize("var", ["ansible_ssh_common_args", "ansible_ssh_extra_args"])
def test_known_hosts_file_comes_from_ssh_args(tmp_path, var, args):
    path = write(tmp_path, "k.yml", "")
    Path(path).write_text(f"web:\n  hosts:\n    h1:\n      {var}: \"{args}\"\n")
    assert load_inventory(path).hosts["h1"].known_hosts_file == "/kh/fleet"


def test_known_hosts_file_is_none_without_the_option(tmp_path):
    inv = load_text(tmp_path, "k.ini", "h1 ansible_ssh_common_args='-o StrictHostKeyChecking=no'\n")
    assert inv.hosts["h1"].known_hosts_file is None


@pytest.mark.parametrize("value, expected", [
    ("yes", True), ("YES", True), ("true", True), ("True", True), ("1", True), ("on", True), ("On", True),
    ("no", False), ("false", False), ("0", False), ("off", False), ("maybe", False),
])
def test_become_accepts_ansible_truthy_strings(tmp_path, value, expected):
    assert load_text(tmp_path, "b.ini", f"h1 ansible_become={value}\n").hosts["h1"].become is expected
    yml = load_text(tmp_path, "b.yml", f"all:\n  hosts:\n    h1:\n      ansible_become: '{value}'\n")
    assert yml.hosts["h1"].become is expected


@pytest.mark.parametrize("value, expected", [
    ("local", "local"), ("ssh", "ssh"), ("paramiko", "ssh"), ("smart", "ssh"), ("ansible.builtin.ssh", "ssh"),
])
def test_connection_maps_to_ssh_or_local(tmp_path, value, expected):
    assert load_text(tmp_path, "c.ini", f"h1 ansible_connection={value}\n").hosts["h1"].connection == expected


def test_ssh_aliases_fill_port_user_and_address(tmp_path):
    inv = load_text(tmp_path, "a.ini", "h1 ansible_ssh_host=198.18.0.5 ansible_ssh_port=22 ansible_ssh_user=ops "
                                       "ansible_private_key_file=/k\n")
    assert inv.hosts["h1"] == Host(name="h1", address="198.18.0.5", port=22, user="ops", key_file="/k",
                                   groups=("ungrouped",))


# --- patterns ------------------------------------------------------------------------------------------

PATTERN_FLEET = """\
    [web]
    web1
    web2
    [db]
    db1
    db2
    [canary]
    web2
    db2
    [prod:children]
    web
    db
    [lab]
    lab1
    """


@pytest.fixture
def fleet(tmp_path) -> Inventory:
    return load_text(tmp_path, "patterns.ini", PATTERN_FLEET)


@pytest.mark.parametrize("pattern, expected", [
    (None, ["web1", "web2", "db1", "db2", "lab1"]),
    ("all", ["web1", "web2", "db1", "db2", "lab1"]),
    ("*", ["web1", "web2", "db1", "db2", "lab1"]),
    ("db1", ["db1"]),
    ("web", ["web1", "web2"]),
    ("web*", ["web1", "web2"]),
    ("*1", ["web1", "db1", "lab1"]),
    ("p*", ["web1", "web2", "db1", "db2"]),  # glob matches the group 'prod'
    ("db:web", ["web1", "web2", "db1", "db2"]),  # union, returned in inventory order
    ("db,web1", ["web1", "db1", "db2"]),
    ("prod:&canary", ["web2", "db2"]),
    ("prod:!canary", ["web1", "db1"]),
    ("!canary:prod", ["web1", "db1"]),  # exclusion applies after unions whatever its position
    ("!prod", ["lab1"]),  # only exclusions: start from all, as Ansible does
    ("web:db:&canary:!db2", ["web2"]),
    ("~(web|lab)1", ["web1", "lab1"]),
    ("~db", ["db1", "db2"]),
    ("web[0]", ["web1"]),
    ("prod[1:2]", ["web2", "db1"]),
    ("prod[-1]", ["db2"]),
    ("web1,web1,web", ["web1", "web2"]),  # no duplicates
    ("nosuchhost", []),
    ("web:&db", []),
    ("", []),
])
def test_select_follows_ansible_pattern_semantics(fleet, pattern, expected):
    assert names(fleet.select(pattern)) == expected


def test_select_with_a_bad_regex_names_the_inventory(fleet):
    with pytest.raises(InventoryError, match=r"patterns\.ini: invalid host pattern '~web\('"):
        fleet.select("~web(")


# --- comma lists -------------------------------------------------------------------------------------------


def test_comma_list_is_an_ad_hoc_inventory():
    inv = load_inventory("h1,198.18.0.7,h2:2222,")
    assert list(inv.hosts) == ["h1", "198.18.0.7", "h2"]
    assert inv.hosts["h2"].port == 2222
    assert inv.groups["ungrouped"] == ["h1", "198.18.0.7", "h2"]
    assert names(load_inventory("solo,").select(None)) == ["solo"]


def test_existing_file_with_a_comma_in_its_name_is_read_as_a_file(tmp_path):
    path = write(tmp_path, "a,b.ini", "[web]\nweb1\n")
    assert list(load_inventory(path).hosts) == ["web1"]


# --- malformed input -----------------------------------------------------------------------------------------

MALFORMED = [
    # (file name, content, line the error must name, words the message must contain)
    ("syntax.yml", "web:\n  hosts:\n    web1: {ansible_port: 22\n    web2:\n", 4, "YAML syntax error"),
    ("tab.yml", "web:\n  hosts:\n\tweb1:\n", 3, "YAML syntax error"),
    ("hosts-list.yml", "all:\n  children:\n    web:\n      hosts:\n        - web1\n        - web2\n", 5,
     "hosts of group 'web' must be a mapping"),
    ("group-vars-list.yml", "web:\n  vars:\n    - ansible_user\n  hosts:\n    web1:\n", 3,
     "vars of group 'web' must be a mapping"),
    ("host-vars-string.yml", "web:\n  hosts:\n    web1: ops\n", 3, "vars of host web1 must be a mapping"),
    ("group-body-list.yml", "web:\n  - web1\n", 2, "group 'web' must be a mapping"),
    ("top-list.yml", "- web1\n- web2\n", 1, "top level must be a mapping"),
    ("unknown-key.yml", "web:\n  host:\n    web1:\n", 2, "unexpected key 'host'"),
    ("range.yml", "web:\n  hosts:\n    web[05:01]:\n", 3, "host range web[05:01] runs backwards"),
    ("cycle.yml", "a:\n  children:\n    b:\n      children:\n        a:\n", 5, "group cycle: a -> b -> a"),
    ("self-cycle.yml", "a:\n  children:\n    a:\n", 3, "group cycle: a -> a"),
    ("alias-cycle.yml", "a: &loop\n  children:\n    b: *loop\n", 3, "group cycle"),
    ("port.yml", "web:\n  vars:\n    ansible_port: twenty-two\n  hosts:\n    web1:\n", 3,
     "ansible_port of host web1 must be an integer port, got 'twenty-two'"),
    ("port-range.yml", "web:\n  hosts:\n    web1:\n      ansible_port: 70000\n", 4, "must be an integer port"),
    ("connection.yml", "web:\n  hosts:\n    web1:\n      ansible_connection: winrm\n", 4,
     "ansible_connection 'winrm' of host web1 is not supported"),
    ("bad-tag.yml", "web:\n  hosts:\n    web1:\n      ansible_port: !!int abc\n", 4, "vars of host web1"),
    ("space-name.yml", "web:\n  hosts:\n    'web 1':\n", 3, "invalid host name 'web 1'"),
    ("empty-name.yml", "web:\n  hosts:\n    '':\n", 3, "invalid host name ''"),
    ("control-name.yml", 'web:\n  hosts:\n    "web\\x071":\n', 3, "invalid host name 'web\\x071'"),
    ("quote.yml", "web:\n  vars:\n    ansible_ssh_common_args: \"-o 'UserKnownHostsFile=/x\"\n  hosts:\n    w1:\n", 3,
     "ansible_ssh_common_args of host w1"),
    ("missing-host.ini", "[web]\nweb1\nansible_port=22\n", 3, "variable 'ansible_port=22' has no host name"),
    ("bogus-section.ini", "[web]\nweb1\n\n[web:bogus]\nx\n", 4, "unknown type 'bogus'"),
    ("bad-header.ini", "[web servers]\nweb1\n", 1, "malformed section header"),
    ("quote.ini", "[web]\nweb1\nweb2 motd=\"unterminated\n", 3, "unterminated quote"),
    ("range.ini", "[web]\nweb01\n\n\n\n\nweb[05:01]\n", 7, "host range web[05:01] runs backwards"),
    ("range-step.ini", "[web]\nweb[1:9:0]\n", 2, "bad step"),
    ("range-open.ini", "[web]\nweb[1:9\n", 2, "host range web[1:9 has '[' without ']'"),
    ("range-width.ini", "[web]\nweb[01:100]\n", 2, "same width"),
    ("range-mixed.ini", "[web]\nweb[a:9]\n", 2, "two numbers or two same-case letters"),
    ("range-huge.ini", "[web]\nweb[0:99999999]\n", 2, "expands to more than"),
    ("cycle.ini", "[a:children]\nb\n[b:children]\na\n", 4, "group cycle: a -> b -> a"),
    ("all-child.ini", "[web:children]\nall\n", 2, "'all' cannot be a child"),
    ("port.ini", "[web]\nweb1 ansible_port=ssh\n", 2, "ansible_port of host web1 must be an integer port"),
    ("port-group.ini", "[web]\nweb1\n[web:vars]\nansible_port=22.5\n", 4, "must be an integer port"),
    ("connection.ini", "[web:vars]\nansible_connection=docker\n[web]\nweb1\n", 2, "'docker'"),
    ("vars-line.ini", "[web:vars]\nnot an assignment\n", 2, "expected key=value in [web:vars]"),
    ("host-var.ini", "[web]\nweb1 ansible_port\n", 2, "expected key=value after host web1"),
    ("children-line.ini", "[prod:children]\nweb db\n", 2, "expected one group name"),
    ("control-name.ini", "[web]\nweb\x071\n", 2, "invalid host name"),
    ("ssh-args-quote.ini", "web1 ansible_ssh_extra_args=\"-o 'UserKnownHostsFile=/x\"\n", 1,
     "ansible_ssh_extra_args of host web1"),
]


@pytest.mark.parametrize("name, content, line, words", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_inventory_error_names_file_line_and_problem(tmp_path, name, content, line, words):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InventoryError) as caught:
        load_inventory(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


def test_error_message_matches_the_documented_shape(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("inventories").mkdir()
    Path("inventories/bad.ini").write_text("[web]\n" + "web1\n" * 5 + "web[05:01]\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory("inventories/bad.ini")
    assert str(caught.value) == "inventories/bad.ini:7: host range web[05:01] runs backwards"


def test_missing_file_is_reported_by_name(tmp_path):
    with pytest.raises(InventoryError, match="nope.yml: cannot read inventory"):
        load_inventory(str(tmp_path / "nope.yml"))
    with pytest.raises(InventoryError, match="nope/hosts: cannot read inventory: No such file"):
        load_inventory(str(tmp_path / "nope" / "hosts"))


def test_non_utf8_file_error_names_the_line(tmp_path):
    path = tmp_path / "latin1.ini"
    path.write_bytes(b"[web]\nweb1\ncaf\xe9\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(str(path))
    assert str(caught.value) == f"{path}:3: not UTF-8 text"


def test_bad_host_in_comma_list_names_the_list():
    with pytest.raises(InventoryError, match=r"^h1,h\[3:1\],: host range h\[3:1\] runs backwards$"):
        load_inventory("h1,h[3:1],")


def test_empty_files_are_empty_inventories(tmp_path):
    for name in ("empty.yml", "empty.ini", "comments-only.ini"):
        inv = load_text(tmp_path, name, "# nothing here\n" if "comments" in name else "")
        assert inv.hosts == {} and inv.groups == {"all": [], "ungrouped": []}


# --- robustness --------------------------------------------------------------------------------------------------

_TOKENS = ["[", "]", ":", "=", ",", "web", "all", "hosts", "vars", "children", "ansible_port", "ansible_connection",
           "ansible_ssh_common_args", "-o UserKnownHostsFile", "[01:03]", "[a:c:2]", "22", "local", "\n", "  ",
           "- ", "'", '"', "#", ";", "{", "}", "&a", "*a", "!!int", "~", "\t", "\x00", "é"]
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300) | st.lists(
    st.sampled_from(_TOKENS), max_size=60).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXT)
def test_random_text_raises_only_inventory_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("random.ini", "random.yml", "random"):
            path = Path(tmp) / name
            path.write_text(text, encoding="utf-8")
            try:
                inv = load_inventory(str(path))
            except InventoryError as exc:
                assert str(exc).startswith(str(path))
            else:
                assert set(inv.groups["all"]) == set(inv.hosts)
                assert all(isinstance(h, Host) for h in inv.hosts.values())
