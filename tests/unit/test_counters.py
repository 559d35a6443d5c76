"""Counter parsing from real /proc text: by header name, across kernels with other columns."""

from pathlib import Path

from rstfleet.probe.host.counters import counter_deltas, parse_proc_table, read_snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "proc"


def test_this_kernels_snmp_gives_out_rsts_by_name():
    tables = parse_proc_table((FIXTURES / "snmp-6.18").read_text())
    tcp = tables["Tcp"]
    header = [l for l in (FIXTURES / "snmp-6.18").read_text().splitlines() if l.startswith("Tcp:")]
    names, values = header[0].split()[1:], header[1].split()[1:]
    assert tcp["OutRsts"] == int(values[names.index("OutRsts")])
    assert tcp["MaxConn"] == -1
    assert "InCsumErrors" in tcp


def test_old_kernel_without_incsumerrors_still_parses():
    tcp = parse_proc_table((FIXTURES / "snmp-2.6.32").read_text())["Tcp"]
    assert tcp["OutRsts"] == 98321
    assert tcp["EstabResets"] == 37714
    assert "InCsumErrors" not in tcp


def test_old_kernel_netstat_has_abort_counters_by_name():
    ext = parse_proc_table((FIXTURES / "netstat-2.6.32").read_text())["TcpExt"]
    assert ext["TCPAbortOnData"] == 19921
    assert ext["TCPAbortOnClose"] == 2101
    assert ext["ListenOverflows"] == 0
    assert "TCPAbortOnLinger" in ext


def test_a_column_inserted_in_the_middle_does_not_shift_values():
    text = ("Tcp: RtoAlgorithm NewCounter OutRsts InErrs\n"
            "Tcp: 1 777 42 3\n")
    assert parse_proc_table(text)["Tcp"] == {"RtoAlgorithm": 1, "NewCounter": 777, "OutRsts": 42, "InErrs": 3}


def test_short_value_line_and_garbage_cost_only_those_counters():
    text = ("Tcp: A B OutRsts C\n"
            "Tcp: 1 x 9\n"
            "TcpExt: Lonely\n")
    tables = parse_proc_table(text)
    assert tables["Tcp"] == {"A": 1, "OutRsts": 9}
    assert "TcpExt" not in tables


def test_deltas_skip_gauges_and_report_counter_reset_as_none():
    start = {"OutRsts": 10, "CurrEstab": 5, "InErrs": 7, "Gone": 1}
    end = {"OutRsts": 25, "CurrEstab": 2, "InErrs": 3}
    assert counter_deltas(start, end) == {"OutRsts": 15, "InErrs": None}


def test_missing_proc_files_give_empty_tables(tmp_path):
    snapshot = read_snapshot(str(tmp_path / "nope"), str(tmp_path / "nope2"))
    assert snapshot == {"Tcp": {}, "TcpExt": {}}


def test_real_proc_of_this_machine_has_the_alert_counter():
    snapshot = read_snapshot()
    assert isinstance(snapshot["Tcp"]["OutRsts"], int)
    assert "ListenOverflows" in snapshot["TcpExt"]
