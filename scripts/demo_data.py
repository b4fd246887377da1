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
"""A small deterministic synthetic dataset that resembles EndoVis 2018 instrument-part segmentation.

Each RGB frame shows reddish tissue (blurred noise, vessels, specular highlights, vignetting, sometimes haze) and
one or two instruments entering from the border: a shaft (class 1, a shaded cylinder), a wrist (class 2, a shorter
jointed segment, bent) and a clasper (class 3, two tapered jaws). Part tones overlap, so the classes are told apart
mostly by shape and position along the instrument. Training entries carry a noisy ``label`` made by
:class:`scripts.noise.SimulateLabelNoise` and the ``label_clean`` it came from. Test labels are clean, as in the
paper. Validation labels are clean too: checkpoints are selected on a small curated split (the paper selected on its
test set, which we avoid); where no clean labels exist at all, point ``validation`` at noisy ones instead.

Example::

    python -m scripts.demo_data --out_dir data/demo --preview docs/demo_preview.png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = [
    "CLASS_NAMES",
    "ensure_demo_dataset",
    "make_demo_dataset",
    "publish_dataset",
    "render_frame",
    "reuse_or_make",
    "save_preview",
]

CLASS_NAMES = ("background", "shaft", "wrist", "clasper")
_SPLITS = {"training": 0, "validation": 1, "test": 2}


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise, rescaled to zero mean and unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-8)


def _frame(point: np.ndarray, angle: float, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (along, across) of every pixel in the frame at ``point`` (y, x) pointing at ``angle``."""
    dy, dx = np.sin(angle), np.cos(angle)
    return (y - point[0]) * dy + (x - point[1]) * dx, -(y - point[0]) * dx + (x - point[1]) * dy


def _cylinder(across: np.ndarray, half: np.ndarray | float, light: float) -> np.ndarray:
    """Shading of a cylinder of half-width ``half``: diffuse term plus a specular stripe at ``light`` in [-1, 1]."""
    t = np.clip(across / half, -1.0, 1.0)
    return 0.25 + 0.6 * np.sqrt(1.0 - t**2) + 0.5 * np.exp(-(((t - light) / 0.18) ** 2))


def _place(rng: np.random.Generator, h: int, w: int, width: float, reach: float, avoid: np.ndarray | None) -> tuple:
    """Draw the shaft tip and angle so the tool tip lies inside the frame and enough shaft shows."""
    for _ in range(100):
        tip = rng.uniform([0.2 * h, 0.2 * w], [0.8 * h, 0.8 * w])
        angle = rng.uniform(-np.pi, np.pi)
        step = np.array([np.sin(angle), np.cos(angle)])
        end = tip + reach * step
        with np.errstate(divide="ignore"):  # distance back to the border along the shaft
            back = np.min(np.where(step != 0, np.maximum(tip / step, (tip - [h, w]) / step), np.inf))
        inside = 4 <= end[0] <= h - 4 and 4 <= end[1] <= w - 4
        if inside and back > 1.5 * width and (avoid is None or np.linalg.norm(tip - avoid) > 0.3 * (h + w)):
            return tip, angle
    return tip, angle


def _tissue(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, scale: float) -> np.ndarray:
    """HW3 tissue: two reds mixed by a smooth field, fine texture, dark vessels along zero lines of a noise field."""
    shape = y.shape
    mix = 1.0 / (1.0 + np.exp(-1.6 * _smooth(rng, shape, 14 * scale)))[..., None]
    dark = rng.uniform([0.45, 0.10, 0.10], [0.62, 0.22, 0.20])
    pink = rng.uniform([0.78, 0.40, 0.36], [0.92, 0.58, 0.52])
    tissue = dark + mix * (pink - dark) + 0.04 * _smooth(rng, shape, 2.5 * scale)[..., None]
    vessels = np.exp(-((_smooth(rng, shape, 5 * scale) / 0.1) ** 2)) * (_smooth(rng, shape, 20 * scale) > 0)
    tissue *= 1.0 - 0.25 * vessels[..., None] * np.array([0.6, 1.0, 1.0])
    if rng.random() < 0.5:  # a suture needle (bright arc) and its violet thread: background, like in EndoVis
        centre, radius = rng.uniform([0, 0], shape), rng.uniform(7, 14) * scale
        ring, bearing = np.hypot(y - centre[0], x - centre[1]), np.arctan2(y - centre[0], x - centre[1])
        needle = (np.abs(ring - radius) < 1.2 * scale) & (np.cos(bearing - rng.uniform(-np.pi, np.pi)) > 0)
        tissue[needle] = rng.uniform(0.6, 0.85) * _cylinder(ring - radius, 1.2 * scale, 0.0)[needle, None] * 0.8
        bend, wobble = rng.uniform(60, 200) * scale, rng.uniform(-np.pi, np.pi)
        swing = 3 * scale * np.sin(bend / (8 * scale) * np.arctan2(y - centre[0] - bend, x - centre[1]) + wobble)
        thread = np.abs(np.hypot(y - centre[0] - bend, x - centre[1]) - bend - swing) < 0.9 * scale
        tissue[thread & ~needle] = [0.30, 0.18, 0.40]
    return tissue


def _instrument(
    rng: np.random.Generator, y: np.ndarray, x: np.ndarray, scale: float, avoid: np.ndarray | None
) -> tuple[list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """(class, mask, HW shading, RGB tone) of the shaft, wrist and clasper of one tool, and the shaft tip."""
    h, w = y.shape
    width = rng.uniform(15, 24) * scale
    wrist_len, jaw_len = rng.uniform(0.9, 1.4) * width, rng.uniform(1.0, 1.5) * width
    tip, angle = _place(rng, h, w, width, wrist_len + jaw_len, avoid)
    tone = rng.uniform(0.32, 0.78) * rng.uniform([0.92, 0.95, 0.97], [1.0, 1.0, 1.05])
    light = rng.uniform(-0.6, 0.6)
    # shaft: from beyond the border to the tip, slightly wider towards the camera (the border)
    along, across = _frame(tip, angle, y, x)
    half = 0.5 * width * (1.0 - 0.25 * along / (h + w))
    parts = [(1, (along <= 0) & (np.abs(across) <= half), _cylinder(across, half, light), tone)]
    # wrist: bent at the tip, often darker, rounded ends, faint joint grooves
    bend = angle + rng.uniform(-0.7, 0.7)
    a2, c2 = _frame(tip, bend, y, x)
    half2 = 0.42 * width
    body = ((a2 >= 0) & (a2 <= wrist_len) & (np.abs(c2) <= half2)) | (a2**2 + c2**2 <= half2**2)
    grooves = 1.0 - rng.uniform(0.1, 0.4) * (np.abs(np.sin(np.pi * 3.0 * a2 / wrist_len)) < 0.25)
    parts.append((2, body, _cylinder(c2, half2, light) * grooves, tone * rng.uniform(0.55, 1.05)))
    # clasper: two tapered jaws from the wrist end, opened by up to ~50 degrees
    base = tip + wrist_len * np.array([np.sin(bend), np.cos(bend)])
    opening = rng.uniform(0.0, 0.9)
    jaws, shade = np.zeros((h, w), dtype=bool), np.zeros((h, w))
    for side in (-1.0, 1.0):
        jaw_angle = bend + rng.uniform(-0.2, 0.2) + side * opening / 2
        a3, c3 = _frame(base + side * 0.22 * width * np.array([np.cos(bend), -np.sin(bend)]), jaw_angle, y, x)
        half3 = 0.27 * width * (1.0 - 0.7 * np.clip(a3 / jaw_len, 0, 1))
        jaw = (a3 >= -0.2 * width) & (a3 <= jaw_len) & (np.abs(c3) <= half3)
        serration = 1.0 - 0.12 * (np.sin(a3 * 2.2 / scale) > 0.6)
        shade = np.where(jaw, _cylinder(c3, half3, -side * 0.5) * serration, shade)
        jaws |= jaw
    parts.append((3, jaws, shade, tone * rng.uniform(0.85, 1.4) * np.array([1.0, 0.98, 0.95])))
    return parts, tip


def render_frame(rng: np.random.Generator, size: Sequence[int] = (128, 160)) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame and its clean label.

    Tissue, one or two tools (60 % two), then the camera: cast shadows, specular highlights, haze (40 %),
    vignetting, blur, brightness/contrast/white-balance jitter and Gaussian sensor noise.

    Args:
        rng: the only source of randomness.
        size: (H, W).

    Returns:
        ``HW3`` uint8 RGB image and ``HW`` uint8 label with values 0..3 (:data:`CLASS_NAMES`).
    """
    h, w = int(size[0]), int(size[1])
    scale = min(h, w) / 128.0
    y, x = np.mgrid[0:h, 0:w].astype(float)
    tissue = _tissue(rng, y, x, scale)
    image, label, tools = tissue.copy(), np.zeros((h, w), dtype=np.uint8), np.zeros((h, w))
    tip = None
    for _ in range(1 + int(rng.random() < 0.6)):
        parts, tip = _instrument(rng, y, x, scale, tip)
        for cls, mask, shading, rgb in parts:
            colour = 0.85 * shading[..., None] * rgb + 0.15 * tissue  # metal reflects the surrounding tissue
            image[mask], label[mask], tools[mask] = colour[mask], cls, 1.0

    cast = ndimage.shift(ndimage.gaussian_filter(tools, 4 * scale), rng.uniform(2, 6, 2) * scale, order=1)
    image *= 1.0 - 0.45 * (cast * (label == 0))[..., None]
    glare = np.clip((_smooth(rng, (h, w), 1.5 * scale) - 2.6) * 2.5, 0, 1) * rng.uniform(0.5, 1.0)
    image += (1.0 - image) * glare[..., None]
    if rng.random() < 0.4:
        haze = 1.0 / (1.0 + np.exp(-_smooth(rng, (h, w), 25 * scale)))
        image += rng.uniform(0.15, 0.4) * haze[..., None] * (0.9 - image)
    radius2 = ((y - h * rng.uniform(0.4, 0.6)) / h) ** 2 + ((x - w * rng.uniform(0.4, 0.6)) / w) ** 2
    image *= (1.0 - rng.uniform(0.6, 1.3) * radius2)[..., None]
    blur = rng.uniform(0.6, 1.2) * scale
    image = ndimage.gaussian_filter(image, (blur, blur, 0))
    gain = rng.uniform(0.75, 1.25) * rng.uniform(0.92, 1.08, 3)
    image = (image - 0.45) * gain + 0.45 + rng.uniform(-0.08, 0.08)
    image += rng.normal(0.0, rng.uniform(0.015, 0.05), image.shape)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), label


def _case_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """Seed of one case: a case's frame and noise do not depend on how many cases the splits hold."""
    return np.random.SeedSequence([seed, _SPLITS[split], index])


def _write_dataset(root: Path, settings: dict[str, Any], noise_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Render every split into ``root``; return the datalist content."""
    h, w = settings["size"]
    counts = {"training": settings["num_train"], "validation": settings["num_val"], "test": settings["num_test"]}
    noise = settings["noise"]
    corrupt = None
    if noise not in (None, "none"):
        from scripts.noise import SimulateLabelNoise  # only needed for noisy training labels
        from scripts.noise_rates import noise_rates

        corrupt = SimulateLabelNoise(mode=noise, num_classes=len(CLASS_NAMES), **noise_kwargs)
    for folder in ("images", "labels", "labels_noisy"):
        (root / folder).mkdir()
    lists: dict[str, list[dict[str, str]]] = {}
    pixel_rates, pair_rates = [], []
    for split, count in counts.items():
        lists[split] = []
        for i in range(count):
            stem = f"{split}_{i:03d}.png"
            case_seed = _case_seed(settings["seed"], split, i)
            image, label = render_frame(np.random.default_rng(case_seed), (h, w))
            Image.fromarray(image).save(root / "images" / stem)
            Image.fromarray(label).save(root / "labels" / stem)
            entry = {"image": f"images/{stem}", "label": f"labels/{stem}"}
            if split == "training":
                noisy = label
                if corrupt is not None:
                    corrupt.set_random_state(seed=int(case_seed.generate_state(1)[0]))
                    noisy = np.asarray(corrupt(label[None]))[0].astype(np.uint8)
                    rates = noise_rates(noisy, label, num_classes=len(CLASS_NAMES))
                    pixel_rates.append(rates["pixel"])
                    pair_rates.append(rates["affinity"])
                Image.fromarray(noisy).save(root / "labels_noisy" / stem)
                entry = {"image": entry["image"], "label": f"labels_noisy/{stem}", "label_clean": entry["label"]}
            lists[split].append(entry)
    return {
        "name": "JCAS synthetic EndoVis-like demo",
        "description": (
            "Synthetic RGB endoscopy frames with instrument-part labels (shaft, wrist, clasper), made by "
            "scripts/demo_data.py. 'training' labels are noisy (label_clean holds the clean ones); 'validation' "
            "and 'test' labels are clean."
        ),
        "reference": "Guo & Yuan, Joint Class-Affinity Loss Correction for Robust Medical Image Segmentation with "
        "Noisy Labels, MICCAI 2022 (EndoVis 2018 setting)",
        "licence": "Apache-2.0 (generated data)",
        "tensorImageSize": "2D",
        "modality": {"0": "R", "1": "G", "2": "B"},
        "num_classes": len(CLASS_NAMES),
        "labels": {str(c): name for c, name in enumerate(CLASS_NAMES)},
        "generator": settings,
        "noise_rates": {
            "pixel": float(np.mean(pixel_rates)) if pixel_rates else 0.0,
            "affinity": float(np.mean(pair_rates)) if pair_rates else 0.0,
        },
        "numTraining": counts["training"],
        "numTest": counts["test"],
        **lists,
    }


def _settings(
    num_train: int, num_val: int, num_test: int, size: Sequence[int], noise: str | None, seed: int, noise_kwargs: Any
) -> dict[str, Any]:
    """Validated generator settings, JSON-normalised (they are stored in the datalist and compared on reuse)."""
    if min(num_train, num_val, num_test) < 1:
        raise ValueError(f"expected at least one case per split, got {num_train}, {num_val}, {num_test}")
    if len(size) != 2 or min(size) < 32:
        raise ValueError(f"expected size (H, W) of at least 32 x 32, got {tuple(size)}")
    noise = "none" if noise is None else noise
    if noise != "none":
        from scripts.noise import NOISE_MODES

        if noise not in NOISE_MODES:
            raise ValueError(f"expected noise None, 'none' or one of {NOISE_MODES}, got {noise!r}")
    settings = {
        "version": 1,
        "num_train": num_train,
        "num_val": num_val,
        "num_test": num_test,
        "size": [int(s) for s in size],
        "noise": noise,
        "noise_kwargs": dict(noise_kwargs or {}),
        "seed": seed,
    }
    return json.loads(json.dumps(settings))


def make_demo_dataset(
    out_dir: str | os.PathLike,
    num_train: int = 48,
    num_val: int = 12,
    num_test: int = 16,
    size: Sequence[int] = (128, 160),
    noise: str | None = "ellipse",
    seed: int = 0,
    overwrite: bool = False,
    noise_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Generate the demo dataset in ``out_dir``; return the path of its ``datalist.json``.

    Layout: ``images/``, ``labels/`` (clean), ``labels_noisy/`` (training only) with PNGs named
    ``<split>_<index>.png``, and ``datalist.json`` (decathlon style, paths relative to ``out_dir``, plus
    ``description``, ``num_classes``, ``labels``, the ``generator`` settings and the mean ``noise_rates`` of the
    training labels). Frames depend only on (``seed``, split, index). Everything is written to a temporary folder
    next to ``out_dir`` and renamed at the end, so an interrupted run leaves no partial dataset.

    Args:
        out_dir: dataset folder; must be absent or empty unless ``overwrite``.
        num_train: training cases (noisy ``label``, clean ``label_clean``).
        num_val: validation cases (clean ``label``).
        num_test: test cases (clean ``label``).
        size: (H, W) of the frames.
        noise: ``SimulateLabelNoise`` mode for the training labels, or None / ``"none"`` for clean ones.
        seed: seed of the frames and of the noise.
        overwrite: replace an existing ``out_dir``.
        noise_kwargs: other ``SimulateLabelNoise`` arguments (``rate``, ``radius``, ``fraction``, ...).

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false.
        ValueError: invalid arguments.
    """
    settings = _settings(num_train, num_val, num_test, size, noise, seed, noise_kwargs)
    return publish_dataset(out_dir, lambda root: _write_dataset(root, settings, settings["noise_kwargs"]), overwrite)


def ensure_demo_dataset(
    out_dir: str | os.PathLike,
    num_train: int = 48,
    num_val: int = 12,
    num_test: int = 16,
    size: Sequence[int] = (128, 160),
    noise: str | None = "ellipse",
    seed: int = 0,
    noise_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Return ``out_dir/datalist.json``, generating the dataset first if it is missing (see :func:`make_demo_dataset`).

    Safe to call twice, or from several processes at once (one rename wins, the others reuse its result).

    Raises:
        ValueError: the existing dataset was made with other settings.
    """
    settings = _settings(num_train, num_val, num_test, size, noise, seed, noise_kwargs)

    def make() -> str:
        return make_demo_dataset(out_dir, num_train, num_val, num_test, size, noise, seed, False, noise_kwargs)

    return reuse_or_make(out_dir, settings, make)


def publish_dataset(
    out_dir: str | os.PathLike, write: Callable[[Path], dict[str, Any]], overwrite: bool = False
) -> str:
    """Build a dataset with ``write(folder)`` in a temporary folder next to ``out_dir``, then rename it into place.

    ``write`` fills the folder and returns the datalist content, saved as ``datalist.json``. An interrupted run
    leaves no partial dataset (the temporary folder is removed); a race with another process is lost by the second
    rename, which fails rather than mixing two datasets.

    Args:
        out_dir: dataset folder; must be absent or empty unless ``overwrite``.
        write: fills the folder it is given and returns the datalist content.
        overwrite: replace an existing ``out_dir``.

    Returns:
        The path of ``out_dir/datalist.json``.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"demo dataset folder '{out}' is not empty; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    tmp.mkdir()
    try:
        content = write(tmp)
        (tmp / "datalist.json").write_text(json.dumps(content, indent=1) + "\n")
        if overwrite and out.exists():
            old = tmp.with_name(tmp.name + ".old")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)  # fails if another process filled ``out`` meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(out / "datalist.json")


def reuse_or_make(out_dir: str | os.PathLike, settings: Mapping[str, Any], make: Callable[[], str]) -> str:
    """Return ``out_dir/datalist.json`` if it was made with ``settings`` (its ``generator`` entry), else ``make()``.

    Safe to call twice, or from several processes at once (one rename wins, the others reuse its result).

    Raises:
        ValueError: the existing dataset was made with other settings.
    """
    path = Path(out_dir) / "datalist.json"
    if not path.is_file():
        try:
            return make()
        except OSError:
            if not path.is_file():  # not a lost race: a real error
                raise
    existing = json.loads(path.read_text()).get("generator")
    if existing != settings:
        raise ValueError(
            f"demo dataset '{path}' was made with {existing}, requested {settings}: delete the folder or call "
            "regenerate it with overwrite=True"
        )
    return str(path)


def save_preview(out_dir: str | os.PathLike, png_path: str | os.PathLike, n: int = 4) -> str:
    """Save a figure of the first ``n`` training cases: image | clean label | noisy label; return ``png_path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # plotting is optional
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    root = Path(out_dir)
    content = json.loads((root / "datalist.json").read_text())
    cases = content["training"][:n]
    colours = ["#000000", "#2ca02c", "#ffbf00", "#1f9bff"]
    cmap = ListedColormap(colours)
    h, w = content["generator"]["size"]
    rows_height = len(cases) * 7.5 * 0.98 / 3 * h / w * 1.04
    fig = Figure(figsize=(7.5, rows_height + 0.7), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(cases), 3, squeeze=False)
    noise = content["generator"]["noise"]
    titles = ("image", "clean label", f"noisy label ({noise})")
    for row, case in enumerate(cases):
        for col, key in enumerate(("image", "label_clean", "label")):
            array = np.asarray(Image.open(root / case[key]))
            ax = axes[row, col]
            ax.imshow(
                array, **({} if key == "image" else {"cmap": cmap, "vmin": 0, "vmax": 3}), interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=10)
    handles = [Patch(color=c, label=name) for c, name in zip(colours, CLASS_NAMES, strict=True)]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False)
    top, bottom = 1 - 0.3 / (rows_height + 0.7), 0.4 / (rows_height + 0.7)
    fig.subplots_adjust(left=0.01, right=0.99, top=top, bottom=bottom, wspace=0.02, hspace=0.04)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path)
    return str(png_path)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: generate (or overwrite) the demo dataset and optionally a preview figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--num_train", type=int, default=48)
    parser.add_argument("--num_val", type=int, default=12)
    parser.add_argument("--num_test", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 160), metavar=("H", "W"))
    parser.add_argument("--noise", default="ellipse")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--preview", default=None, help="PNG path of a preview figure")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = make_demo_dataset(
        args.out_dir, args.num_train, args.num_val, args.num_test, args.size, args.noise, args.seed, args.overwrite
    )
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")
    if args.preview:
        print(f"wrote {save_preview(args.out_dir, args.preview)}")


if __name__ == "__main__":
    main()
