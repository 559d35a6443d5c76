"""scripts/apt-install.sh: no service starts while Debian packages install (netdata's agent must not
run in the root namespace), and the policy-rc.d it adds never outlives the install.

apt-get is a stub on PATH here (a real install needs the network and root, and would start
nothing to observe in a unit test); the stub runs the policy file the way invoke-rc.d does and
records its exit status. The policy path is redirected into tmp_path so the machine's own
/usr/sbin/policy-rc.d is never touched."""

from __future__ import annotations

import os
import subprocess

from helpers import ROOT

SCRIPT = ROOT / "scripts" / "apt-install.sh"


def install(tmp_path, apt_exit: int = 0) -> tuple[subprocess.CompletedProcess, str]:
    bin_dir, policy, seen = tmp_path / "bin", tmp_path / "policy-rc.d", tmp_path / "seen"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "apt-get"
    stub.write_text(f"#!/bin/sh\n[ -x '{policy}' ] && '{policy}' netdata start; echo $? >'{seen}'\n"
                    f"exit {apt_exit}\n")
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", RSTFLEET_POLICY_RC_D=str(policy))
    proc = subprocess.run(["bash", str(SCRIPT), "netdata"], env=env, capture_output=True, text=True,
                          timeout=30)
    return proc, seen.read_text().strip()


def test_services_are_forbidden_during_the_install_and_the_policy_is_gone_after(tmp_path):
    proc, seen = install(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert seen == "101"                      # invoke-rc.d's "action forbidden"
    assert not (tmp_path / "policy-rc.d").exists()


def test_a_failed_install_removes_the_policy_too(tmp_path):
    proc, seen = install(tmp_path, apt_exit=100)
    assert proc.returncode == 100 and seen == "101"
    assert not (tmp_path / "policy-rc.d").exists()


def test_a_policy_that_was_there_before_is_used_and_left_alone(tmp_path):
    own = tmp_path / "policy-rc.d"
    own.write_text("#!/bin/sh\nexit 104\n")
    own.chmod(0o755)
    proc, seen = install(tmp_path)
    assert proc.returncode == 0 and seen == "104"
    assert own.read_text() == "#!/bin/sh\nexit 104\n"
