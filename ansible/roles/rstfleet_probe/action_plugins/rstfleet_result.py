# -*- coding: utf-8 -*-
"""Action rstfleet_result: write one host's rstfleet.hostresult/1 envelope on the controller.

Runs in the controller's worker process (no module, no connection, nothing on the host, no temp
file on the controller but the one renamed into place). The envelope is what `rstfleet report DIR`
reads (rstfleet/merge.py):

    {"schema": "rstfleet.hostresult/1", "host": ..., "address": ..., "groups": [...],
     "status": "ok" | "unreachable" | "auth_failed" | "host_key_rejected" | "timeout" |
               "no_python" | "become_failed" | "probe_error",
     "reason": "...", "probe": {...} | null, "elapsed_s": ..., "collected_by": {...}}

Statuses are rstfleet's own (rstfleet/results.py); Ansible's outcomes are mapped onto them the way
rstfleet's SSH transport classifies the same failures.

    - rstfleet_result:                       # one host's result
        out_dir: DIR
        result: "{{ rstfleet_probe_result }}"
        host: "{{ inventory_hostname }}"
        address: "{{ ansible_host | default(inventory_hostname) }}"
        groups: "{{ group_names }}"
    - rstfleet_result:                       # accounting: hosts without a file get one
        out_dir: DIR
        account: [h1, h2, ...]
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

ENVELOPE_SCHEMA = "rstfleet.hostresult/1"
OK = "ok"
UNREACHABLE = "unreachable"
AUTH_FAILED = "auth_failed"
HOST_KEY_REJECTED = "host_key_rejected"
TIMEOUT = "timeout"
NO_PYTHON = "no_python"
BECOME_FAILED = "become_failed"
PROBE_ERROR = "probe_error"
STATUSES = (OK, UNREACHABLE, AUTH_FAILED, HOST_KEY_REJECTED, TIMEOUT, NO_PYTHON, BECOME_FAILED,
            PROBE_ERROR)
MAX_REASON = 1000
NOT_RECORDED = ("no result recorded: the host left the play before rstfleet_probe reported "
                "(it failed or was unreachable in an earlier task, or the run was interrupted)")

_HOST_KEY = ("host key verification failed", "remote host identification has changed",
             "host key for", "no hostkey alg")
_AUTH = ("permission denied", "authentication failed", "too many authentication failures",
         "no more authentication methods")
_BECOME = ("missing sudo password", "incorrect sudo password", "sudo: a password is required",
           "sudo: no tty present", "sudo: sorry, you must have a tty", "privilege escalation",
           "incorrect su password", "missing become password", "is not in the sudoers file",
           "may not run sudo")
_NO_PYTHON = ("python3: not found", "python: not found", "python3: no such file",
              "python: no such file", "no python interpreter", "interpreter discovery",
              "/usr/bin/python3: not found", "bad interpreter")


def _text(value):
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return str(value)


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _reason(*parts):
    """One line, bounded: Ansible messages may carry whole stderr dumps."""
    text = " ".join(p for p in (_text(x).strip() for x in parts) if p)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > MAX_REASON:
        text = text[:MAX_REASON - 1] + "…"
    return text


def _strip_prefix(msg):
    """ansible-core 2.19 prefixes task errors with 'Task failed: '; the reason is what follows."""
    text = _text(msg)
    return text[len("Task failed: "):] if text.startswith("Task failed: ") else text


def classify_unreachable(msg):
    """Ansible 'unreachable' covers what rstfleet splits into four statuses."""
    low = _text(msg).lower()
    if any(s in low for s in _HOST_KEY):
        return HOST_KEY_REJECTED
    if any(s in low for s in _AUTH):
        return AUTH_FAILED
    if "banner exchange" in low:  # TCP accepted, no SSH banner (a tarpit)
        return TIMEOUT
    return UNREACHABLE


def classify_failure(result):
    """A failed module run: become, missing Python, task timeout, or the probe itself."""
    msg = _strip_prefix(result.get("msg"))
    detail = " ".join(_text(result.get(k)) for k in ("module_stderr", "module_stdout", "stderr"))
    low = (msg + " " + detail).lower()
    if result.get("timedout") or "timed out after" in low:
        return TIMEOUT, _reason("probe did not finish within the task timeout:", msg)
    if any(s in low for s in _BECOME):
        return BECOME_FAILED, _reason(msg, result.get("module_stderr"))
    if result.get("rc") == 127 or any(s in low for s in _NO_PYTHON):
        return NO_PYTHON, _reason("python3 is not installed or not on PATH on this host:", msg,
                                  result.get("module_stderr"))
    return PROBE_ERROR, _reason(msg, result.get("module_stderr") if "MODULE FAILURE" in msg else "")


def rstfleet_envelope(result, host, address=None, groups=None, engine=None, window=None):
    """The envelope for one host from its registered rstfleet_probe result (may be {} or None)."""
    result = dict(result or {})
    envelope = {
        "schema": ENVELOPE_SCHEMA,
        "host": _text(host),
        "address": _text(address) or _text(host),
        "groups": [_text(g) for g in (groups or [])],
        "status": PROBE_ERROR,
        "reason": "",
        "probe": None,
        "elapsed_s": result.get("elapsed_s") if isinstance(result.get("elapsed_s"), (int, float)) else 0.0,
        "window_s": _number(window),
        "collected_by": {"engine": "ansible", "version": _text(engine),
                         "probe_sha256": _text(result.get("probe_sha256"))},
    }
    if not result:
        envelope["reason"] = NOT_RECORDED
    elif result.get("unreachable"):
        envelope["status"] = classify_unreachable(result.get("msg"))
        envelope["reason"] = _reason(_strip_prefix(result.get("msg"))) or "unreachable"
    elif result.get("skipped"):
        envelope["reason"] = _reason("the probe task was skipped:", result.get("skip_reason") or result.get("msg"))
    elif result.get("failed"):
        envelope["status"], envelope["reason"] = classify_failure(result)
        envelope["reason"] = envelope["reason"] or "the probe task failed"
    elif isinstance(result.get("probe"), dict):
        envelope["status"] = OK
        envelope["probe"] = result["probe"]
    else:
        envelope["reason"] = "the rstfleet_probe module returned no probe document"
    return envelope


def rstfleet_result_filename(host):
    """A safe, collision-free file name for a host's envelope: NAME.json, or NAME-HASH.json when the
    inventory name had to be changed to be a file name."""
    name = _text(host)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "_"
    if safe != name:
        safe = "%s-%s" % (safe[:100], hashlib.sha256(name.encode("utf-8")).hexdigest()[:10])
    return safe + ".json"


def write_envelope(out_dir, envelope):
    """Atomically (temp file + rename in the same directory) write the host's envelope."""
    path = os.path.join(out_dir, rstfleet_result_filename(envelope["host"]))
    temp = os.path.join(out_dir, ".%s.%d.tmp" % (os.path.basename(path), os.getpid()))
    text = json.dumps(envelope, sort_keys=True, indent=1, ensure_ascii=True) + "\n"
    try:
        with open(temp, "w") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path


def _hostvar(hostvars, host, name, default):
    try:
        value = hostvars[host].get(name)
    except Exception:  # an undefined or broken variable must not cost the host its record
        return default
    return default if value is None else value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("out_dir", "result", "host", "address", "groups", "window", "account"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        outcome = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        if not args.get("out_dir"):
            raise AnsibleActionFail("rstfleet_result needs out_dir")
        out_dir = os.path.abspath(os.path.expanduser(_text(args["out_dir"])))
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as exc:
            raise AnsibleActionFail("cannot create %s: %s" % (out_dir, exc))
        engine = _text(task_vars.get("ansible_version", {}).get("full", ""))
        if "account" in args:
            present = set(os.listdir(out_dir))
            written = []
            hostvars = task_vars.get("hostvars", {})
            for host in args.get("account") or []:
                host = _text(host)
                if rstfleet_result_filename(host) in present:
                    continue
                envelope = rstfleet_envelope({}, host, _hostvar(hostvars, host, "ansible_host", host),
                                             _hostvar(hostvars, host, "group_names", []), engine,
                                             args.get("window"))
                write_envelope(out_dir, envelope)
                written.append(host)
            outcome.update(changed=bool(written), unrecorded=written, out_dir=out_dir)
            return outcome
        host = _text(args.get("host") or task_vars.get("inventory_hostname"))
        envelope = rstfleet_envelope(args.get("result"), host, args.get("address") or host,
                                     args.get("groups") or [], engine, args.get("window"))
        path = write_envelope(out_dir, envelope)
        outcome.update(changed=True, path=path, status=envelope["status"], reason=envelope["reason"])
        return outcome
