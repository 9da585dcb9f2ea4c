"""suite.report.browser.check_page against a real headless Chromium.

The browser tests are SKIPPED when no Chromium (or no `websocket-client`) is available -- unless
SUITE_REQUIRE_BROWSER=1 (set by .ci/run after installing Debian's chromium), in which case they
FAIL with the reason, so CI cannot pass without actually opening the pages. Same pattern as the
`slurm_cluster` fixture in tests/conftest.py.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import pytest

from suite.report.browser import check_page, find_chromium


def _browser_required() -> bool:
    return os.environ.get("SUITE_REQUIRE_BROWSER", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of the Chromium that check_page will use; skips (or fails, see above) otherwise."""
    reason = ""
    exe = find_chromium()
    if exe is None:
        reason = "no chromium/chromium-browser/google-chrome on PATH and SUITE_CHROMIUM unset"
    else:
        try:
            import websocket  # noqa: F401
        except ImportError:
            reason = "`websocket-client` is not installed (pip install -e '.[test]')"
    if reason:
        if _browser_required():
            pytest.fail(f"SUITE_REQUIRE_BROWSER=1 but the browser check cannot run: {reason}\n"
                        "Install one with `apt-get install -y --no-install-recommends chromium`.",
                        pytrace=False)
        pytest.skip(f"no headless browser: {reason}")
    return exe


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid solid-colour RGB PNG, written by hand (no image library needed)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_good_page_is_clean_and_screenshot_is_full_page(chromium, tmp_path: Path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(_png(120, 80, (200, 30, 30)))
    (tmp_path / "b.png").write_bytes(_png(60, 90, (30, 30, 200)))
    page = tmp_path / "index.html"
    page.write_text("""<!doctype html>
<html><head><meta charset="utf-8"><title>still loading</title>
<style>body { font-family: sans-serif; background: #f4f4f8; } .tall { height: 1500px; }</style>
</head><body>
<h1>Good report</h1>
<img src="img/a.png" alt="a">
<div class="tall">spacer</div>
<img src="b.png" alt="b" loading="lazy">
<script>
  console.log("fine"); console.warn("not an error");
  window.addEventListener("load", () => { document.title = "Good report"; });
</script>
</body></html>""")
    shot = tmp_path / "out" / "shot.png"

    r = check_page(page, shot, width=800, height=600, timeout_s=60)

    assert r["url"] == page.resolve().as_uri()
    assert r["title"] == "Good report"  # set by a load handler: check_page waited for load
    assert r["console_errors"] == []
    assert r["page_errors"] == []
    assert r["failed_requests"] == []
    assert r["images"] == 2
    assert r["broken_images"] == []  # the lazy image below the fold must have loaded too
    assert r["screenshot"] == str(shot)
    data = shot.read_bytes()
    assert r["screenshot_bytes"] == len(data) > 1000
    w, h = _png_size(data)
    assert w == 800
    assert h >= 1500 + 80 + 90, "screenshot is not full-page (captureBeyondViewport)"


def test_broken_page_reports_image_console_and_page_errors(chromium, tmp_path: Path):
    (tmp_path / "ok.png").write_bytes(_png(40, 40, (0, 160, 0)))
    page = tmp_path / "broken.html"
    page.write_text("""<!doctype html>
<html><head><title>Broken</title></head><body>
<img src="ok.png">
<img src="figures/missing.png">
<script>console.error("boom"); undefined_fn();</script>
</body></html>""")

    r = check_page(page, timeout_s=60)

    assert r["title"] == "Broken"
    assert r["images"] == 2
    assert r["broken_images"] == ["figures/missing.png"]
    assert any(e == "boom" for e in r["console_errors"]), r["console_errors"]
    assert len(r["page_errors"]) == 1, r["page_errors"]
    assert "ReferenceError" in r["page_errors"][0] and "undefined_fn" in r["page_errors"][0]
    assert r["page_errors"][0] in r["console_errors"]
    # the failed image load shows up as a failed request (and as Chromium's console error)
    assert len(r["failed_requests"]) == 1, r["failed_requests"]
    assert "figures/missing.png" in r["failed_requests"][0]
    assert any("missing.png" in e for e in r["console_errors"] if e != "boom")
    assert r["screenshot"] is None and r["screenshot_bytes"] == 0


def test_missing_page_raises(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        check_page(tmp_path / "nope.html")


def test_find_chromium_prefers_env(monkeypatch, tmp_path: Path):
    fake = tmp_path / "my-chrome"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("SUITE_CHROMIUM", str(fake))
    assert find_chromium() == str(fake)
    monkeypatch.setenv("SUITE_CHROMIUM", str(tmp_path / "absent"))
    assert find_chromium() is None


def test_startup_failure_reports_stderr(monkeypatch, tmp_path: Path):
    pytest.importorskip("websocket")
    fake = tmp_path / "bad-chrome"
    fake.write_text("#!/bin/sh\necho 'cannot open display: simulated failure' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("SUITE_CHROMIUM", str(fake))
    page = tmp_path / "p.html"
    page.write_text("<html></html>")
    with pytest.raises(RuntimeError, match=r"(?s)code 3.*simulated failure"):
        check_page(page, timeout_s=10)


def test_the_committed_quickstart_report_loads_cleanly_in_chromium(chromium, tmp_path):
    """The report `suite demo` writes, opened in a real browser: no console or page errors, every figure
    loads, and a screenshot is taken."""
    page = Path(__file__).resolve().parents[2] / "reports" / "quickstart" / "index.html"
    res = check_page(page, tmp_path / "quickstart.png")
    assert res["console_errors"] == [] and res["page_errors"] == [] and res["failed_requests"] == []
    drawn = json.loads((page.parent / "summary.json").read_text())["figures"]   # every figure the report made
    assert res["images"] == len(drawn) == 6 and res["broken_images"] == []
    assert res["title"].startswith("Quickstart")
    data = (tmp_path / "quickstart.png").read_bytes()
    width, height = _png_size(data)
    assert width >= 1000 and height > 3000 and res["screenshot_bytes"] == len(data)
