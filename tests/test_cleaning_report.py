# Copyright (c) 2026 JCAS bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The label-cleaning pictures and report page; the page rendered by headless Chromium (skipped without it)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from scripts.cleaning_report import case_picture, figure_png, picture_slice, report_html, thumbnail

CLASSES = ("background", "shaft", "wrist", "clasper")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 255, (3, 40, 60)).astype(np.float32)
    given = np.zeros((40, 60), dtype=np.uint8)
    given[10:30, 10:50] = 1
    corrected = given.copy()
    corrected[10:30, 40:50] = 2
    return image, given, corrected


def _page(folder, rows: int = 5, pictures: int = 2) -> str:
    links, thumbs = {}, {}
    for index in range(pictures):
        image, given, corrected = _case(index)
        png = figure_png(case_picture(image, given, corrected, CLASSES, f"#{index + 1} case {index}"))
        (folder / "pictures").mkdir(exist_ok=True)
        (folder / "pictures" / f"{index + 1:03d}.png").write_bytes(png)
        links[index], thumbs[index] = f"pictures/{index + 1:03d}.png", thumbnail(png, width=240)
    table = [{"rank": r + 1, "index": r, "case": f"images/<case {r}>.png", "score": 1 - r / 10} for r in range(rows)]
    page = report_html(table, ["rank", "case", "score"], links, thumbs, notes=["a & b"])
    (folder / "report.html").write_text(page, encoding="utf-8")
    return page


def test_picture_has_four_panels_and_a_legend():
    image, given, corrected = _case(0)
    with Image.open(io.BytesIO(figure_png(case_picture(image, given, corrected, CLASSES, "case")))) as png:
        rgb = np.asarray(png.convert("RGB"))
    assert rgb.shape[1] > 3 * rgb.shape[0]  # four panels side by side
    assert (np.all(rgb == (255, 0, 255), axis=-1)).sum() > 100  # the changed pixels in magenta
    with pytest.raises(ValueError, match="one size"):
        case_picture(image, given[:10], corrected, CLASSES, "case")


def test_picture_slice_is_the_most_changed_one():
    given = np.zeros((4, 4, 5), dtype=np.uint8)
    corrected = given.copy()
    corrected[:2, :, 3] = 1
    corrected[0, 0, 1] = 1
    assert picture_slice(given, corrected) == 3
    assert picture_slice(given, given) == 2 and picture_slice(given[..., 0], given[..., 0]) is None


def test_report_is_one_escaped_page(tmp_path):
    page = _page(tmp_path)
    assert page.count("<tr") == 6 and page.count('src="data:image/png;base64,') == 2
    assert "&lt;case 0&gt;" in page and "a &amp; b" in page and "<case 0>" not in page
    assert re.findall(r'href="([^"]+)"', page) == ["pictures/001.png", "pictures/002.png"]
    assert "<script" not in page and "http" not in page  # nothing fetched: one file


def _chromium(*args: str, profile) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    flags += [f"--user-data-dir={profile}", "--hide-scrollbars"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    """The page a person opens: Chromium's screenshot is not blank (the thumbnails and the table are drawn) and its
    DOM holds one table row per case."""
    _page(tmp_path, rows=5)
    url = (tmp_path / "report.html").as_uri()
    shot = tmp_path / "shot.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,900", url, profile=tmp_path / "profile")
    assert shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as png:
        rgb = np.asarray(png.convert("RGB"))
    assert rgb.shape[:2] == (900, 1200)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 200 and rgb.std() > 20  # not a blank page
    assert (np.abs(rgb.astype(int) - (255, 0, 255)).sum(axis=-1) < 60).sum() > 50  # a thumbnail's changed pixels
    dom = _chromium("--dump-dom", url, profile=tmp_path / "profile2").stdout
    body = dom[dom.index("<tbody>") : dom.index("</tbody>")]
    assert body.count("<tr") == 5 and "images/&lt;case 4&gt;.png" in body
