"""The HTML report in a real browser: headless Chromium loads the file (no network), and its
rendered DOM has the ranked hosts in order, the SVG chart, and no script a host could inject.

Chromium is a test dependency (Debian: apt-get install -y chromium); without it these tests
fail with that command rather than skip.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest

from rstfleet.report import render

from report_parsers import SHOWN, fixture_assessments, hostile, parse_html

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def chromium(tmp_path, page_html: str, *args: str) -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("headless Chromium is needed for the HTML report tests: apt-get install -y chromium")
    page = tmp_path / "report.html"
    page.write_text(page_html, encoding="utf-8")
    proc = subprocess.run([binary, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args,
                           page.as_uri()], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode("utf-8")


def test_chromium_renders_the_ranked_hosts_in_order_and_the_chart(tmp_path):
    dom = chromium(tmp_path, render("html", *fixture_assessments()), "--dump-dom")
    page = parse_html(dom)
    assert [row[:2] for row in page.tables["ranked"]] == [["1", "h02"], ["2", "h04"], ["3", "h01"]]
    assert page.tables["not-checked"][0][:2] == ["h03", "unreachable"]
    assert re.search(r'<svg id="chart" role="img"[^>]*>', dom)
    assert page.svg_rects == 2
    bars = re.findall(r'<text class="host"[^>]*>(\d+)\. (\w+)</text>', dom)
    assert bars == [("1", "h02"), ("2", "h04")]


def test_chromium_screenshot_is_a_full_page_image(tmp_path):
    shot = tmp_path / "report.png"
    chromium(tmp_path, render("html", *fixture_assessments()), f"--screenshot={shot}",
             "--window-size=1200,1400")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 1400) and len(data) > 30_000   # a page with text, not blank


def test_chromium_builds_no_script_element_from_hostile_host_text(tmp_path):
    dom = chromium(tmp_path, render("html", *hostile()), "--dump-dom")
    assert "<script" not in dom.lower()
    assert parse_html(dom).tables["ranked"][0][1] == SHOWN
    assert "<title>rstfleet:" in dom
