"""Hosts behind a bastion: a second subnet of the lab that only its first host (h01) can reach.

    root ── rfb<k> ── eth0 [h01, the bastion] rfi (bridge) ── v<i> ═ eth0 [rf<j>-h<i>: i01, i02, …]

The inner hosts live in the lab's second /22 block (index j). Their bridge is inside the
bastion's namespace; IP forwarding there is off; the root namespace has no route to them, only an
``unreachable`` one, so a direct connection fails at once ("No route to host") and no lab packet
ever follows this machine's default route out. The one way in is an SSH channel of the bastion
(direct-tcpip, what ProxyJump uses). Inner hosts run their own sshd with their own host keys
(added to the lab's known_hosts), form the inventory group ``inner``, and the lab's
``ssh_config`` says ``ProxyJump bastion`` for them — usable by OpenSSH and by ``--ssh-config``.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import yaml

from rstfleet_lab.fleet import (BLOCK, LAB_NETWORK, WORKERS, Lab, LabHost, SSHD_CONFIG, _keygen, _run,
                                _start_sshd, _wait_ready)
from rstfleet_lab.netns import kill_and_wait, namespace_pids

INNER_BRIDGE = "rfi"   # inside the bastion's namespace, so the name is free in every lab

# Reads each address's banner from inside a namespace (the only place that reaches inner hosts).
_BANNERS = """import socket, sys
for address in sys.argv[1:]:
    try:
        with socket.create_connection((address, 22), timeout=2.0) as sock:
            print(sock.recv(256)[:4].decode("ascii", "replace"))
    except OSError:
        print("-")
"""


def inner_gateway(lab: Lab) -> str:
    """The bastion's address on the inner subnet (the inner block's .1)."""
    return str(LAB_NETWORK.network_address + lab.inner_index * BLOCK + 1)


def inner_subnet(lab: Lab) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(f"{inner_gateway(lab)}/22", strict=False)


def banners_from(lab: Lab, inside: LabHost, hosts: list[LabHost]) -> list[bytes | None]:
    """The first bytes each host's port 22 sends, read from ``inside``'s namespace."""
    proc = lab.run_in(inside, [sys.executable, "-c", _BANNERS, *(h.address for h in hosts)])
    words = proc.stdout.split()
    return [w.encode() if w != "-" else None for w in words] + [None] * (len(hosts) - len(words))


def build_inner(lab: Lab) -> None:
    """Network, sshd, known_hosts, inventory group and ssh_config of the planned ``lab.inner``."""
    bastion, gateway = lab.hosts[0], inner_gateway(lab)

    def prepare(h: LabHost) -> None:
        hd = lab.host_dir(h)
        hd.mkdir()
        (hd / "sshd_config").write_text(SSHD_CONFIG.format(address=h.address, host_dir=hd, state_dir=lab.state_dir))
        _keygen(hd / "ssh_host_ed25519_key", f"rstfleet-lab-{h.name}")

    def inside(h: LabHost) -> None:
        _run(["ip", "-n", h.namespace, "-batch", "-"], stdin=f"link set eth0 addrgenmode none\n"
             f"addr add {h.address}/22 dev eth0\nlink set eth0 up\nlink set lo up\n")

    root = [f"netns add {h.namespace}" for h in lab.inner] + [f"route add unreachable {inner_subnet(lab)}"]
    behind = [f"link add {INNER_BRIDGE} type bridge", f"link set {INNER_BRIDGE} addrgenmode none",
              f"addr add {gateway}/22 dev {INNER_BRIDGE}", f"link set {INNER_BRIDGE} up"]
    for i, h in enumerate(lab.inner, 1):
        behind += [f"link add v{i} type veth peer name eth0 netns {h.namespace}",
                   f"link set v{i} addrgenmode none", f"link set v{i} master {INNER_BRIDGE} up"]
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(prepare, lab.inner))
        _run(["ip", "-batch", "-"], stdin="\n".join(root) + "\n")
        _run(["ip", "-n", bastion.namespace, "-batch", "-"], stdin="\n".join(behind) + "\n")
        # Forwarding off: the bastion relays SSH channels, never packets.
        lab.run_in(bastion, ["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"], check=True)
        list(pool.map(inside, lab.inner))
        list(pool.map(lambda h: _start_sshd(lab.host_dir(h), h), lab.inner))
    _wait_ready(lab, lab.inner, timeout=10.0 + 0.1 * len(lab.inner), inside=bastion)
    with open(lab.known_hosts_path, "a") as known:
        known.writelines(f"{h.address} {' '.join((lab.host_dir(h) / 'ssh_host_ed25519_key.pub').read_text().split()[:2])}\n"
                         for h in lab.inner)
    inventory = yaml.safe_load(lab.inventory_path.read_text())
    inventory["inner"] = {"hosts": {h.name: {"ansible_host": h.address} for h in lab.inner},
                          "vars": dict(inventory["lab"]["vars"])}
    lab.inventory_path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    lab.ssh_config_path.write_text(ssh_config(lab))


def ssh_config(lab: Lab) -> str:
    """`Host bastion` and the inner hosts behind it, complete enough for plain OpenSSH."""
    login = (f"  User root\n  IdentityFile {lab.key_path}\n  IdentitiesOnly yes\n"
             f"  UserKnownHostsFile {lab.known_hosts_path}\n")
    inner = " ".join(dict.fromkeys(h.address.rsplit(".", 1)[0] + ".*" for h in lab.inner))
    return (f"# rstfleet lab {lab.name}: hosts {lab.inner[0].name}..{lab.inner[-1].name} are reached "
            f"through {lab.hosts[0].name}\nHost bastion\n  HostName {lab.hosts[0].address}\n{login}"
            f"Host {inner}\n  ProxyJump bastion\n{login}")


def remove_inner(lab: Lab) -> list[str]:
    """Stop the inner hosts' processes, delete their namespaces (their veths go with them; the
    bridge goes with the bastion's namespace) and the root namespace's unreachable route; return
    what is still there."""
    namespaces = [h.namespace for h in lab.inner]
    pids = [p for ps in namespace_pids(namespaces).values() for p in ps]
    survivors = kill_and_wait(pids, signal.SIGKILL)
    lines = [f"netns del {ns}" for ns in namespaces] + [f"route del unreachable {inner_subnet(lab)}"]
    _run(["ip", "-force", "-batch", "-"], stdin="\n".join(lines) + "\n", check=False)
    listed = set(_run(["ip", "netns", "list"], check=False).stdout.split())
    routes = _run(["ip", "route", "show", "type", "unreachable", str(inner_subnet(lab))], check=False).stdout
    return ([ns for ns in namespaces if ns in listed] + [f"pid {p}" for p in survivors]
            + ([f"route {routes.strip()}"] if routes.strip() else []))
