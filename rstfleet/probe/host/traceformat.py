"""A tracepoint's ``format`` file, and its event lines parsed against it (stdlib only, Python >= 3.6).

Offsets and field names differ between kernels (tcp_send_reset gained sockaddr fields and a
``reason`` in 2024; tcp_receive_reset keeps the older v4/v6 arrays): never hard-code them, read
the print fmt and turn it into a regex, one group a conversion.

    parse_event(parse_format(text), "family=AF_INET sport=50602 dport=9 saddr=198.18.0.3 ...")
    -> {"ts": None, "saddr": "198.18.0.3", "sport": 50602, "daddr": "198.18.0.2", "dport": 9, ...}
"""

import re

CONVERSION_RE = re.compile(r"%%|%[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z)?(?:p[A-Za-z0-9]*|[a-zA-Z])")
FIELD_RE = re.compile(r"field:(.*?)(\w+)\s*(\[[^\]]*\])?;\s*offset:(\d+);\s*size:(\d+);\s*signed:(\d+);")
PAIR_RE = re.compile(r"\{\s*([^,{}]+?)\s*,\s*\"([^\"]*)\"\s*\}")
SYMBOLIC_RE = re.compile(r"__print_symbolic\(\s*REC->(\w+)\s*((?:,\s*\{[^{}]*\}\s*)*)\)")


def _split_args(text):
    """Split the print fmt's arguments at top-level commas (brackets nest, "strings" are opaque)."""
    args, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "({[)}]":
            depth += 1 if ch in "({[" else -1
        elif not quoted and ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    return args + ([text[start:].strip()] if text[start:].strip() else [])


def parse_format(text):
    """An event ``format`` file -> {"name", "id", "fields": {name: {type, offset, size, signed}},
    "print_fmt", "conversions": [(spec, field)], "symbols": {field: {key: name}}, "line_re"}."""
    name, ident = re.search(r"^name:\s*(\S+)", text, re.M), re.search(r"^ID:\s*(\d+)", text, re.M)
    fmt = {"name": name and name.group(1), "id": ident and int(ident.group(1)), "fields": {}, "print_fmt": "",
           "conversions": [], "symbols": {}}
    match = re.search(r'^print fmt:\s*"((?:[^"\\]|\\.)*)"\s*,?(.*)', text, re.M | re.S)
    if match:
        fmt["print_fmt"] = match.group(1)
        specs = [m.group(0) for m in CONVERSION_RE.finditer(match.group(1)) if m.group(0) != "%%"]
        for spec, arg in zip(specs, _split_args(match.group(2).strip())):
            ref = re.search(r"REC->(\w+)", arg)
            fmt["conversions"].append((spec, ref.group(1) if ref else None))
            for field, pairs in SYMBOLIC_RE.findall(arg):
                fmt["symbols"][field] = dict(PAIR_RE.findall(pairs))
    for ctype, name, dims, offset, size, signed in FIELD_RE.findall(text):
        fmt["fields"][name] = {"type": ctype.strip() + dims, "offset": int(offset), "size": int(size),
                               "signed": signed == "1"}
    pieces, pos = [], 0  # the print fmt as a regex: literal parts escaped, each conversion a group
    for match in CONVERSION_RE.finditer(fmt["print_fmt"]):
        pieces += [re.escape(fmt["print_fmt"][pos:match.start()].replace("\\n", "")),
                   "%" if match.group(0) == "%%" else r"(\S*)"]
        pos = match.end()
    fmt["line_re"] = re.compile("".join(pieces) + re.escape(fmt["print_fmt"][pos:]) + r"\s*$")
    return fmt


def _endpoint(text):
    """'198.18.0.2:80' / '[::1]:80' (%pISpc) -> (address, port); a bare address -> (address, None)."""
    match = re.match(r"\[(.*)\]:(\d+)$|([^:]*):(\d+)$", text)
    addr, port = (match.group(1) or match.group(3), match.group(2) or match.group(4)) if match else (text, None)
    addr = addr[7:] if addr.startswith("::ffff:") and "." in addr else addr  # v4-mapped
    return addr or None, (int(port) if port else None)


def _symbol(fmt, field, text):
    """The kernel prints the symbolic name; a raw number (a value outside its table) is looked up."""
    if field in fmt["fields"] and re.match(r"(0x[0-9a-fA-F]+|-?\d+)$", text):
        return fmt["symbols"].get(field, {}).get(str(int(text, 0)), text)
    return (text or None) if field in fmt["fields"] else None


def parse_event(fmt, body, ts=None):
    """One event's text (after "tcp_send_reset: ") -> event dict; None if it does not fit the format."""
    match = fmt["line_re"].match(body)
    if not match:
        return None
    values = {field: (spec, text) for (spec, field), text in zip(fmt["conversions"], match.groups())}
    get = lambda name: values.get(name, ("", ""))  # noqa: E731
    event = {"ts": ts, "saddr": None, "daddr": None, "sport": None, "dport": None,
             "state": _symbol(fmt, "state", get("state")[1]), "reason": _symbol(fmt, "reason", get("reason")[1])}
    family = get("family")[1]
    for side, key in (("s", "saddr"), ("d", "daddr")):
        spec, text = get(key)
        if spec.startswith("%pIS"):  # a sockaddr: address and port together (Linux >= 5.x tcp_probe style)
            event[key], event[side + "port"] = _endpoint(text)
            continue
        v6 = _endpoint(get(key + "_v6")[1])[0]  # older layout: v4 array, v6 array, sport/dport
        use_v6 = family == "AF_INET6" if family else (v6 not in (None, "::") and ":" in v6)
        event[key] = v6 if use_v6 else (text or None)
        port = get(side + "port")[1]
        event[side + "port"] = int(port) if port.isdigit() else None
    return event
