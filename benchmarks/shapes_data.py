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
"""A second synthetic 2D dataset, of another kind than the endoscopy demo: grey-scale, smooth organ-like shapes,
speckle, and another class balance.

Each 112 x 128 (H x W) grey frame shows an organ (class 1, a large smooth blob, about a quarter of the frame), one to
three lesions inside it (class 2, small round blobs, brighter or darker, about 2 % of the pixels) and a duct (class 3,
a thin curved tube crossing the organ, about 2 %), under multiplicative speckle, a smooth bias field and blur, as in
ultrasound or low-dose imaging. The benchmark uses it to check that fixed defaults hold on data they were not
chosen on (``python -m benchmarks.robustness --dataset shapes2d``); the tests use it for a task of 4 grey classes.

Example::

    python -m benchmarks.shapes_data --out_dir data/shapes --num_train 48
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from scripts.demo_data import publish_dataset, reuse_or_make

__all__ = ["CLASS_NAMES", "ensure_shapes_dataset", "render_shapes"]

CLASS_NAMES = ("background", "organ", "lesion", "duct")
_SPLITS = {"training": 0, "validation": 1, "test": 2}


def _blob(rng: np.random.Generator, y: np.ndarray, x: np.ndarray, centre, radius: float, wobble: float) -> np.ndarray:
    """A star-shaped blob: radius modulated by a few random Fourier terms of the angle."""
    angle = np.arctan2(y - centre[0], x - centre[1])
    r = np.hypot(y - centre[0], x - centre[1])
    edge = np.full_like(angle, radius)
    for k in range(2, 6):
        edge += wobble * radius / k * rng.uniform(-1, 1) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    return r <= edge


def render_shapes(rng: np.random.Generator, size: Sequence[int] = (112, 128)) -> tuple[np.ndarray, np.ndarray]:
    """One frame and its clean label: ``HW`` uint8 grey image, ``HW`` uint8 label with values 0..3."""
    h, w = int(size[0]), int(size[1])
    y, x = np.mgrid[0:h, 0:w].astype(float)
    label = np.zeros((h, w), dtype=np.uint8)
    centre = rng.uniform([0.35 * h, 0.35 * w], [0.65 * h, 0.65 * w])
    organ = _blob(rng, y, x, centre, rng.uniform(0.25, 0.33) * min(h, w), 0.35)
    label[organ] = 1
    # a duct: a thin sine-bent tube through the organ's centre
    theta = rng.uniform(0, np.pi)
    along = (y - centre[0]) * np.sin(theta) + (x - centre[1]) * np.cos(theta)
    across = -(y - centre[0]) * np.cos(theta) + (x - centre[1]) * np.sin(theta)
    bend = rng.uniform(3, 8) * np.sin(along / rng.uniform(10, 20) + rng.uniform(0, 2 * np.pi))
    duct = (np.abs(across - bend) <= rng.uniform(1.2, 2.2)) & (np.abs(along) <= 0.5 * min(h, w))
    label[duct] = 3
    for _ in range(int(rng.integers(1, 4))):  # lesions inside the organ
        inside = np.argwhere(organ & ~duct)
        if not len(inside):
            break
        spot = inside[rng.integers(len(inside))]
        label[_blob(rng, y, x, spot, rng.uniform(3, 6), 0.2) & organ] = 2
    tones = {0: rng.uniform(0.15, 0.3), 1: rng.uniform(0.45, 0.6), 2: rng.uniform(0.75, 1.0), 3: rng.uniform(0.05, 0.2)}
    if rng.random() < 0.5:
        tones[2] = rng.uniform(0.2, 0.3)  # a dark lesion
    image = np.zeros((h, w))
    for c, tone in tones.items():
        image[label == c] = tone
    image = ndimage.gaussian_filter(image, rng.uniform(0.8, 1.5))
    bias = ndimage.gaussian_filter(rng.standard_normal((h, w)), 20)
    image *= 1 + 0.6 * bias / (np.abs(bias).max() + 1e-8)
    image *= rng.gamma(4.0, 0.25, (h, w))  # speckle, mean 1
    image = ndimage.gaussian_filter(image, 0.6)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), label


def _write(root: Path, settings: dict[str, Any]) -> dict[str, Any]:
    (root / "images").mkdir()
    (root / "labels").mkdir()
    lists: dict[str, list[dict[str, str]]] = {}
    counts = {"training": settings["num_train"], "validation": settings["num_val"], "test": settings["num_test"]}
    for split, count in counts.items():
        lists[split] = []
        for i in range(count):
            stem = f"{split}_{i:03d}.png"
            rng = np.random.default_rng(np.random.SeedSequence([settings["seed"], 7, _SPLITS[split], i]))
            image, label = render_shapes(rng, settings["size"])
            Image.fromarray(image).save(root / "images" / stem)
            Image.fromarray(label).save(root / "labels" / stem)
            lists[split].append({"image": f"images/{stem}", "label": f"labels/{stem}"})
    return {
        "name": "JCAS synthetic grey shapes",
        "description": "Grey frames with an organ, lesions and a duct (benchmarks/shapes_data.py); clean labels.",
        "licence": "Apache-2.0 (generated data)",
        "tensorImageSize": "2D",
        "modality": {"0": "grey"},
        "num_classes": len(CLASS_NAMES),
        "labels": {str(c): name for c, name in enumerate(CLASS_NAMES)},
        "generator": settings,
        **lists,
    }


def ensure_shapes_dataset(
    out_dir: str | os.PathLike,
    num_train: int = 48,
    num_val: int = 32,
    num_test: int = 64,
    size: Sequence[int] = (112, 128),
    seed: int = 0,
) -> str:
    """``out_dir/datalist.json`` of the grey shapes dataset, generated first if missing (clean labels in every
    split; frames depend only on the seed, the split and the index).

    Raises:
        ValueError: the existing dataset was made with other settings.
    """
    settings = {"kind": "shapes", "version": 1, "num_train": num_train, "num_val": num_val, "num_test": num_test}
    settings.update({"size": [int(s) for s in size], "seed": seed})
    return reuse_or_make(out_dir, settings, lambda: publish_dataset(out_dir, lambda root: _write(root, settings)))


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: generate the dataset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--num_train", type=int, default=48)
    parser.add_argument("--num_val", type=int, default=32)
    parser.add_argument("--num_test", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(ensure_shapes_dataset(args.out_dir, args.num_train, args.num_val, args.num_test, seed=args.seed))


if __name__ == "__main__":
    main()
