"""The fleet window's line in every report (sweep/window.py measures it; JSON keeps the figures)."""

from __future__ import annotations


def window_sentence(window: dict) -> str:
    """The fleet window's line in every report, from ``FleetWindow.as_dict()`` (sweep/window.py).

    >>> window_sentence({"hosts_measured": 3, "span_s": 10.4, "start_spread_s": 0.2,
    ...                  "overlap": True, "groups": 1, "split_reason": ""})
    'one window: 3 hosts measured within 10.4 s, starts 0.2 s apart, every window overlaps a common instant'
    """
    if not window.get("hosts_measured"):
        return "no window measured"
    text = (f"{window['hosts_measured']} host{'s' if window['hosts_measured'] != 1 else ''} measured "
            f"within {window['span_s']:.1f} s, starts {window['start_spread_s']:.1f} s apart")
    if window.get("groups", 1) > 1:
        return (f"split into {window['groups']} successive windows ({window.get('split_reason') or 'limits'}): "
                + text)
    if window.get("overlap"):
        return f"one window: {text}, every window overlaps a common instant"
    return f"windows do not all overlap (a host started after another had ended): {text}"


def window_lines(meta: dict) -> list[tuple[str, str]]:
    """The fleet block's window line, when the run measured one."""
    return [("window", window_sentence(meta["fleet_window"]))] if meta.get("fleet_window") else []
