"""Resets counted as they are read from the trace: bounded by distinct keys, never by events.

A host that sends 4,000 resets in the window is 4,000 trace lines but one key, e.g.
``("sent", "198.18.0.2", 9, "198.18.0.3", None, "NO_SOCKET") -> 4000`` (stdlib only, Python >= 3.6).

Two tables:
    resets  both directions, keyed (direction, local address, local port, peer, peer port, reason),
            a client's ephemeral port collapsed to None (``canonical_ports``) so that the two ends
            of one reset count under mirrored keys: what the controller pairs across the fleet;
    flows   sent only, (local port, peer, reason): the cause code's view (unchanged shape).
Each is capped at ``max_keys``; an event whose key finds no room is still counted (``cut``).
A sample keeps the first ``sample`` single resets of each direction with their timestamp and
4-tuple, for pairing by 4-tuple and measuring how far apart the two ends stamped them.
"""

from .limits import EPHEMERAL_PORT_MIN, TRACE_KEYS, TRACE_SAMPLE

DIRECTIONS = ("sent", "received")


def canonical_ports(local_port, peer_port, floor=EPHEMERAL_PORT_MIN):
    """(local, peer) with a client's ephemeral port replaced by None: the port at or above
    ``floor`` when the other is below it. A function of the two numbers only, so both ends of a
    connection collapse the same side: (9, 50602) -> (9, None) on the server that sent the RST,
    (50602, 9) -> (None, 9) on the client that received it."""
    if local_port is None or peer_port is None:
        return local_port, peer_port
    if local_port >= floor > peer_port:
        return None, peer_port
    if peer_port >= floor > local_port:
        return local_port, None
    return local_port, peer_port


def _bump(table, key, limit, ts=None):
    """Count one event under key; False when the table is full and the key is new."""
    row = table.get(key)
    if row is not None:
        row[0] += 1
        row[2] = ts if ts is not None else row[2]
        return True
    if len(table) >= limit:
        return False
    table[key] = [1, ts, ts]
    return True


class ResetTally(object):
    """``add("sent" | "received", event)`` for each kept event; ``document()`` for the probe's JSON."""

    def __init__(self, max_keys=TRACE_KEYS, sample=TRACE_SAMPLE):
        self.max_keys, self.sample_size = max_keys, sample
        self.resets, self.flows = {}, {}
        self.events = dict.fromkeys(DIRECTIONS, 0)
        self.cut = dict.fromkeys(DIRECTIONS, 0)     # events of keys that found no room in ``resets``
        self.flows_cut = 0                          # sent events of flows that found no room
        self.samples = dict((d, []) for d in DIRECTIONS)

    def add(self, direction, event):
        self.events[direction] += 1
        ts, reason = event.get("ts"), event.get("reason")
        local_port, peer_port = canonical_ports(event["sport"], event["dport"])
        key = (direction, event["saddr"], local_port, event["daddr"], peer_port, reason)
        if not _bump(self.resets, key, self.max_keys, ts):
            self.cut[direction] += 1
        if direction == "sent" and not _bump(self.flows, (event["sport"], event["daddr"], reason), self.max_keys):
            self.flows_cut += 1
        if len(self.samples[direction]) < self.sample_size:
            self.samples[direction].append(event)

    def flow_rows(self):
        """[[local port, peer, reason, count], ...], most first."""
        rows = [[port, peer, reason, row[0]] for (port, peer, reason), row in self.flows.items()]
        return sorted(rows, key=lambda row: (-row[3], str(row[0]), str(row[1])))

    def reset_rows(self):
        """[[direction, local, local port, peer, peer port, reason, count, first ts, last ts], ...]."""
        rows = [list(key) + row for key, row in self.resets.items()]
        return sorted(rows, key=lambda row: (row[0], -row[6], str(row[3]), str(row[2]), str(row[4])))

    def sample_rows(self, direction):
        """[[ts, local, local port, peer, peer port, reason], ...] in the order read."""
        return [[e.get("ts"), e["saddr"], e["sport"], e["daddr"], e["dport"], e.get("reason")]
                for e in self.samples[direction]]

    def document(self):
        return {"events": self.events["sent"], "kept_sample": len(self.samples["sent"]),
                "flows": self.flow_rows(), "flows_cut": self.flows_cut,
                "resets": self.reset_rows(), "resets_cut": dict(self.cut),
                "sample": {"sent": self.sample_rows("sent"), "received": self.sample_rows("received")},
                "received": {"events": self.events["received"], "kept_sample": len(self.samples["received"])}}
