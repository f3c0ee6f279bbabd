"""The HTML report in a real browser (Debian's headless Chromium): a screenshot, no broken image, no console error.

A copy of the page gets a probe script ahead of everything else: it records console.error/warn calls,
uncaught errors and failed resource loads, and after load writes them and the number of <img> whose
naturalWidth is 0 into the DOM, which --dump-dom prints. The same check run on a deliberately broken
page must find its faults.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .pictures import assert_picture
from .test_report import report  # noqa: F401 - the module-scoped report fixture, built once

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=5000")
PROBE = """<script>
const problems = [];
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => { problems.push(`console.${level}: ${args.join(" ")}`); original(...args); };
}
window.addEventListener("error", e => problems.push(`error: ${e.message || (e.target && e.target.src) || "?"}`), true);
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
  const pre = document.createElement("pre");
  pre.textContent = `images=${imgs.length} broken=${broken}\\n` + problems.join("\\n") + "\\nend-probe";
  document.body.appendChild(pre);
});
</script>"""

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                 "(/usr/bin/chromium): apt-get install chromium")]


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def inspect(page: Path, tmp_path: Path) -> tuple[int, int, list[str]]:
    """(images, broken images, console messages) of ``page`` after load."""
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("<!DOCTYPE html>", "<!DOCTYPE html>" + PROBE, 1))
    done = chromium(probed, tmp_path / "profile-dom", "--dump-dom")
    found = re.search(r"images=(\d+) broken=(\d+)\n(.*?)end-probe", done.stdout, re.S)
    assert found, f"the probe did not run: {done.stderr[-2000:]}"
    return int(found[1]), int(found[2]), [line for line in found[3].splitlines() if line]


def test_report_renders_in_chromium(report, tmp_path):  # noqa: F811
    page = report / "report.html"
    shot = tmp_path / "report.png"
    done = chromium(page, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.is_file(), done.stderr[-2000:]
    assert_picture(shot)
    images, broken, console = inspect(page, tmp_path)
    assert images == len(list(report.glob("*.png"))) and images >= 5
    assert broken == 0
    assert console == []


def test_the_check_finds_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA" alt="x">'
                    '<script>console.error("boom")</script></body></html>')
    images, broken, console = inspect(page, tmp_path)
    assert (images, broken) == (1, 1)
    assert any("boom" in line for line in console)
