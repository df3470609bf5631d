"""The HTML battle report really renders: headless Chromium, no network, plotly charts drawn.

Chromium gets no network at all (a dead proxy and a resolver that finds nothing), so the test
fails if the page needed anything but itself. ``scripts/ensure-chromium.sh`` installs Chromium;
the test is skipped only when no Chromium binary exists.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from lasso_rpc.battle.report.html import CHART_IDS, render_html

pytestmark = pytest.mark.battle

FIXTURE = Path(__file__).parent.parent / "fixtures" / "battle_result_sample.json"
WIDTH, HEIGHT = 1280, 2600


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _chromium()
    if path is None:
        pytest.skip("chromium is not installed (run scripts/ensure-chromium.sh)")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(json.loads(FIXTURE.read_text())))
    return path


def _chromium_cmd(chromium: str, profile: Path, *args: str) -> list[str]:
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        # no network: every connection goes to a dead proxy, every name resolves to nothing
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--hide-scrollbars",
        f"--window-size={WIDTH},{HEIGHT}",
        "--virtual-time-budget=5000",
        *args,
    ]


@dataclass(frozen=True, slots=True)
class Rendered:
    dom: str  # the DOM after the page's scripts ran (--dump-dom)
    screenshot: Path


@pytest.fixture(scope="module")
def rendered(chromium: str, report: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """Run Chromium twice at once: once dumping the DOM, once taking a screenshot."""
    tmp = tmp_path_factory.mktemp("chromium")
    shot = tmp / "report.png"
    procs = [
        subprocess.Popen(
            _chromium_cmd(chromium, tmp / f"profile-{i}", *args, report.as_uri()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i, args in enumerate((["--dump-dom"], [f"--screenshot={shot}"]))
    ]
    outputs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        outputs.append(out)
    return Rendered(outputs[0].decode(), shot)


def test_every_chart_renders_offline(rendered: Rendered) -> None:
    html = rendered.dom
    assert "Provider failover" in html
    for chart_id in CHART_IDS:
        start = html.index(f'id="{chart_id}"')
        chart = html[start : html.index("</section>", start)]
        # plotly replaced the empty div with its SVG: axes, traces, and the chaos shading
        assert 'class="main-svg"' in chart, f"{chart_id} did not render"
        assert 'class="xtick"' in chart and "seconds since start" in chart, chart_id
        assert "kill_provider alpha" in chart and "inject_latency beta" in chart, chart_id
        assert 'class="shapelayer"' in chart, chart_id
    section = {cid: html[html.index(f'id="{cid}"') :].split("</section>")[0] for cid in CHART_IDS}
    assert section["chart-latency"].count('class="js-line"') >= 3
    assert 'class="js-fill"' in section["chart-share"]
    assert section["chart-breakers"].count('class="point"') >= 8  # closed, half-open, open bars
    assert 'data-unformatted="alpha"' in section["chart-breakers"]
    assert 'data-unformatted="gamma"' in section["chart-breakers"]


def _png_rgb_rows(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG into rows of pixel bytes (no imaging library needed)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = depth = color = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat.append(body)
    assert depth == 8 and color in (2, 6), f"unexpected PNG format depth={depth} color={color}"
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    prev, rows = bytearray(stride), []
    for y in range(height):
        off = y * (stride + 1)
        kind_, line = raw[off], bytearray(raw[off + 1 : off + 1 + stride])
        if kind_ == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind_ == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind_ == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind_ == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def test_screenshot_shows_the_charts(rendered: Rendered) -> None:
    data = rendered.screenshot.read_bytes()
    assert len(data) > 50_000, "the screenshot is suspiciously small"
    width, height, bpp, rows = _png_rgb_rows(data)
    assert (width, height) == (WIDTH, HEIGHT)
    colors: Counter[bytes] = Counter()
    for row in rows[::3]:
        for x in range(0, width * bpp, bpp * 3):
            colors[row[x : x + 3]] += 1
    total = sum(colors.values())
    assert len(colors) > 200, "the page looks flat"
    assert colors.most_common(1)[0][1] < 0.8 * total
    # the breaker timeline's closed bars (#2ca02c) and open bars (#d62728) are really drawn
    assert colors[bytes((0x2C, 0xA0, 0x2C))] > 2_000
    assert colors[bytes((0xD6, 0x27, 0x28))] > 200
