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
"""What a person reads after ``configs/clean_labels.json``: one picture per suspect case (image, given label,
corrected label, where they differ) and ``report.html``, a single self-contained page (the ranking as a table, the
pictures' thumbnails inlined, links to the full pictures), readable in any browser without a server."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .outputs import display_image, label_palette, overlay

__all__ = ["case_picture", "figure_png", "picture_slice", "report_html", "thumbnail"]

_DIFFERENCE = np.array([255, 0, 255], dtype=np.uint8)  # magenta: pixels whose label was changed


def picture_slice(given: np.ndarray, corrected: np.ndarray) -> int | None:
    """The index along the last axis of an HWD volume with the most changed voxels (the middle one if none
    changed); None for an HW image."""
    if given.ndim == 2:
        return None
    changed = (given != corrected).reshape(-1, given.shape[-1]).sum(axis=0)
    return int(changed.argmax()) if changed.any() else given.shape[-1] // 2


def case_picture(image: np.ndarray, given: np.ndarray, corrected: np.ndarray, class_names: Sequence[str], title: str):
    """A matplotlib figure of one case, four panels side by side: the image, the given label over it, the corrected
    label over it, and the changed pixels (magenta) over the dimmed image; a legend names the class colours.

    Args:
        image: CHW image, any range (three channels shown as RGB, one as grey).
        given: HW given labels.
        corrected: HW corrected labels.
        class_names: the C class names, background first.
        title: the figure's title (case, rank, score).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global state, no display
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if given.shape != corrected.shape or image.shape[1:] != given.shape:
        raise ValueError(
            f"expected a CHW image and HW labels of one size, got {image.shape}, {given.shape}, {corrected.shape}"
        )
    rgb = (display_image(image) * 255).astype(np.uint8)
    changed = given != corrected
    difference = (0.4 * rgb).astype(np.uint8)
    difference[changed] = _DIFFERENCE
    panels = [
        ("image", rgb),
        ("given label", overlay(image, given)),
        ("corrected label", overlay(image, corrected)),
        (f"changed: {int(changed.sum())} px", difference),
    ]
    height, width = given.shape
    fig = Figure(figsize=(4 * 2.6 * max(width / height, 0.5), 2.6 + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    for ax, (name, panel) in zip(axes, panels, strict=True):
        ax.imshow(panel, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    colours = label_palette(len(class_names)) / 255.0
    handles = [Patch(color=colours[c], label=name) for c, name in enumerate(class_names) if c > 0]
    handles.append(Patch(color=_DIFFERENCE / 255.0, label="changed"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.82, bottom=0.14, wspace=0.03)
    return fig


def thumbnail(png: bytes, width: int = 360) -> str:
    """A ``data:`` URI of a PNG scaled to ``width`` pixels wide, for a page with no files beside it."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        img = img.convert("RGB")
        height = max(1, round(img.height * width / img.width))
        out = io.BytesIO()
        img.resize((width, height), Image.LANCZOS).save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.4em; } p.note { max-width: 60em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: right; vertical-align: middle; }
th { background: #e8e8e8; position: sticky; top: 0; }
td.case { text-align: left; min-width: 18em; max-width: 32em; overflow-wrap: anywhere; font-size: 0.9em; }
tr.suspect td { background: #fff3f3; } img.thumb { display: block; width: 360px; }
"""


def report_html(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    pictures: Mapping[int, str],
    thumbnails: Mapping[int, str],
    title: str = "Label cleaning",
    notes: Sequence[str] = (),
) -> str:
    """The report page: ``rows`` (ranking.csv's, most suspect first) as a table of ``columns``, with a thumbnail
    (a ``data:`` URI, see :func:`thumbnail`) linking to the full picture for the cases that have one.

    Args:
        rows: one mapping per case with at least ``rank``, ``index`` and ``case``.
        columns: the columns shown, in order.
        pictures: case index -> the picture's path relative to the page.
        thumbnails: case index -> its thumbnail's ``data:`` URI.
        title: the page title.
        notes: paragraphs above the table (plain text, escaped here).
    """
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["picture", *columns])
    body = []
    for row in rows:
        index = int(row["index"])
        picture = ""
        if index in pictures:
            link = html.escape(pictures[index], quote=True)
            image = f'<img class="thumb" src="{thumbnails[index]}" alt="case {index}">' if index in thumbnails else ""
            picture = f'<a href="{link}">{image or "picture"}</a>'
        cells = "".join(
            f'<td class="case">{_cell(row.get(c))}</td>' if c == "case" else f"<td>{_cell(row.get(c))}</td>"
            for c in columns
        )
        suspect = ' class="suspect"' if index in pictures else ""
        body.append(f"<tr{suspect}><td>{picture}</td>{cells}</tr>")
    paragraphs = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{paragraphs}\n"
        f'<table id="ranking"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(body) + "\n</tbody></table>\n"
        "</body></html>\n"
    )


def figure_png(fig) -> bytes:
    """The PNG bytes of a matplotlib figure made with :func:`case_picture`."""
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
