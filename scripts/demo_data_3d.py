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
"""A small deterministic synthetic CT dataset for the 3D overlay (``configs/train_3d.json``): an abdomen-like slab.

Each volume is a single-channel CT in HU (int16 NIfTI) of an elliptic body in air: a subcutaneous fat layer, a
muscle wall, viscera mixing fat and soft tissue, bowel gas, a vertebral body and the aorta (background), a lobulated
liver (class 1), a bean-shaped kidney on each side (class 2, contrast-enhanced, about as bright as the aorta) and one
or two hypodense lesions inside the liver (class 3). Voxels are anisotropic (default 1.5 x 1.5 x 4 mm) and the cases
are stored in four orientations (RAS, LPS, LAS, PLS in turn; the affine keeps every case in the same world frame), so
``Orientationd`` and ``Spacingd`` both matter. Training entries carry a noisy ``label`` made by
:class:`scripts.noise.SimulateLabelNoise` (default: morphological noise, each organ eroded or dilated by one voxel)
and the ``label_clean`` it came from; validation and test labels are clean, as in :mod:`scripts.demo_data`.

Example::

    python -m scripts.demo_data_3d --out_dir data/demo_3d
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, ornt_transform
from scipy import ndimage

from .demo_data import publish_dataset, reuse_or_make

__all__ = ["AXCODES", "CLASS_NAMES", "ensure_demo_dataset_3d", "make_demo_dataset_3d", "render_volume"]

CLASS_NAMES = ("background", "liver", "kidney", "lesion")
AXCODES = ("RAS", "LPS", "LAS", "PLS")  # storage orientation of case i: AXCODES[i % 4]
DEFAULT_NOISE_KWARGS = {"morph": {"radius": [1, 1]}}  # 1.5 mm in-plane, 4 mm across slices: 2 would erase lesions
_SPLITS = {"training": 0, "validation": 1, "test": 2}
_SALT = 3  # seeds differ from the 2D demo's


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: Sequence[float]) -> np.ndarray:
    """Gaussian-blurred white noise (``sigma`` in voxels per axis), rescaled to zero mean and unit deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-8)


def _quadric(
    grid: Sequence[np.ndarray], centre: Sequence[float], semi: Sequence[float], angle: float = 0.0
) -> np.ndarray:
    """Ellipsoid form sum(((p - centre) turned by ``angle`` about z) / semi)^2 at every voxel: <= 1 inside."""
    dx, dy, dz = (g - c for g, c in zip(grid, centre, strict=True))
    u, v = np.cos(angle) * dx + np.sin(angle) * dy, -np.sin(angle) * dx + np.cos(angle) * dy
    return (u / semi[0]) ** 2 + (v / semi[1]) ** 2 + (dz / semi[2]) ** 2


def _organs(
    rng: np.random.Generator, grid: Sequence[np.ndarray], body: Sequence[float], spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Clean label (liver 1, kidneys 2, lesions 3) in the body of semi-axes ``body`` (x, y, half z) in mm, and each
    kidney voxel's ellipsoid form (< 0.3: the medulla, darker)."""
    x, y, _ = grid
    bx, by, hz = body
    size = x.shape
    label, kidney_q = np.zeros(size, dtype=np.uint8), np.full(size, np.inf)
    centre = np.array([bx * rng.uniform(0.25, 0.4), by * rng.uniform(-0.05, 0.15), hz * rng.uniform(0.0, 0.3)])
    semi = np.array([bx * rng.uniform(0.5, 0.6), by * rng.uniform(0.55, 0.7), hz * rng.uniform(0.6, 0.8)])
    lobes = 1.0 + 0.2 * _smooth(rng, size, [12.0 / s for s in spacing])
    inside = (x / (0.9 * bx)) ** 2 + (y / (0.9 * by)) ** 2 <= 1.0
    label[(_quadric(grid, centre, semi, rng.uniform(-0.4, 0.4)) <= lobes) & inside] = 1
    z_kidneys = hz * rng.uniform(-0.45, -0.2)
    for side in (1.0, -1.0):
        k_centre = (side * bx * rng.uniform(0.45, 0.55), -by * rng.uniform(0.35, 0.45), z_kidneys + rng.uniform(-4, 4))
        k_semi = (bx * rng.uniform(0.16, 0.2), by * rng.uniform(0.24, 0.3), hz * rng.uniform(0.3, 0.4))
        angle = side * rng.uniform(0.2, 0.5)
        q = _quadric(grid, k_centre, k_semi, angle)
        shift = -side * 0.85 * k_semi[0]  # the hilum: a notch on the medial side
        notch = (k_centre[0] + shift * np.cos(angle), k_centre[1] + shift * np.sin(angle), k_centre[2])
        kidney = (q <= 1.0) & (_quadric(grid, notch, (0.45 * k_semi[0], 0.35 * k_semi[1], 0.5 * k_semi[2]), angle) > 1)
        label[kidney], kidney_q[kidney] = 2, q[kidney]
    liver = label == 1
    for _ in range(1 + int(rng.random() < 0.4)):
        for _ in range(20):  # a lesion centre that leaves most of the sphere inside the liver
            radius, lesion_centre = rng.uniform(0.5, 0.65) * semi.min(), centre + rng.uniform(-0.45, 0.45, 3) * semi
            lesion = (_quadric(grid, lesion_centre, (radius,) * 3) <= 1.0) & liver
            if lesion.sum() >= 0.5 * 4.0 / 3.0 * np.pi * radius**3 / np.prod(spacing):
                break
        else:  # fall back on the liver's centroid
            lesion_centre = [float(g[liver].mean()) for g in grid]
            lesion = (_quadric(grid, lesion_centre, (radius,) * 3) <= 1.0) & liver
        label[lesion] = 3
    return label, kidney_q


def render_volume(
    rng: np.random.Generator, size: Sequence[int] = (64, 64, 24), spacing: Sequence[float] = (1.5, 1.5, 4.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Render one CT volume and its clean label in RAS voxel order (axis 0 towards the patient's right).

    Args:
        rng: the only source of randomness.
        size: (X, Y, Z) voxels.
        spacing: voxel size in mm along X, Y, Z.

    Returns:
        ``XYZ`` int16 image in HU (air -1000, fat about -100, liver 55..75, kidney 130..180, lesion 40..60 below the
        liver, bone 300..500) and ``XYZ`` uint8 label with values 0..3 (:data:`CLASS_NAMES`).
    """
    size, spacing = tuple(int(n) for n in size), tuple(float(s) for s in spacing)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(size, spacing, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij")
    x, y, _ = grid
    extent = np.array(size) * np.array(spacing)
    bx, by = extent[0] * rng.uniform(0.42, 0.47), extent[1] * rng.uniform(0.33, 0.38)
    label, kidney_q = _organs(rng, grid, (bx, by, extent[2] / 2), spacing)
    mm = [1.0 / s for s in spacing]  # sigma of 1 mm in voxels

    fat, muscle, liver = rng.uniform(-110, -80), rng.uniform(40, 55), rng.uniform(55, 75)
    ring = np.sqrt((x / bx) ** 2 + (y / by) ** 2)  # 1 on the skin
    skin = rng.uniform(3.0, 6.0) / min(bx, by)
    image = np.where(ring <= 1.0, fat, -1000.0)
    image[(ring <= 1.0 - skin) & (ring > 1.0 - skin - 4.0 / min(bx, by))] = muscle
    viscera = ring <= 1.0 - skin - 4.0 / min(bx, by)
    mix = 1.0 / (1.0 + np.exp(-2.0 * (_smooth(rng, size, [6 * m for m in mm]) + 0.4)))
    image[viscera] = (fat + mix * (rng.uniform(25, 45) - fat))[viscera]
    gas = _smooth(rng, size, [3 * m for m in mm]) > 2.3
    image[viscera & gas & (x < 0) & (y > -0.2 * by)] = -850.0
    image[_quadric(grid, (0.0, -0.72 * by, 0.0), (0.13 * bx, 0.13 * bx, np.inf)) <= 1.0] = rng.uniform(300, 500)
    image[_quadric(grid, (-0.15 * bx, -0.45 * by, 0.0), (0.07 * bx, 0.07 * bx, np.inf)) <= 1.0] = rng.uniform(140, 190)
    texture = _smooth(rng, size, [2 * m for m in mm])
    image[label == 1] = liver + 6.0 * texture[label == 1]
    kidney = rng.uniform(130, 180)
    image[label == 2] = np.where(kidney_q[label == 2] < 0.3, kidney - 50.0, kidney)  # medulla darker than cortex
    image[label == 3] = liver - rng.uniform(40, 60) + 4.0 * texture[label == 3]
    image = ndimage.gaussian_filter(image, [0.8 * m for m in mm])
    image += rng.normal(0.0, rng.uniform(8.0, 15.0), size)
    return np.clip(np.round(image), -1024, 3071).astype(np.int16), label


def _nifti(array: np.ndarray, spacing: Sequence[float], axcodes: str) -> nib.Nifti1Image:
    """``array`` (RAS voxel order, centred on the world origin) stored in ``axcodes`` order, same world positions."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.asarray(spacing) * (np.asarray(array.shape) - 1) / 2
    image = nib.Nifti1Image(array, affine).as_reoriented(ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(axcodes)))
    image.header.set_xyzt_units("mm")
    return image


def _write_dataset(root: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Render every split into ``root``; return the datalist content."""
    from .noise import SimulateLabelNoise
    from .noise_rates import noise_rates

    counts = {"training": settings["num_train"], "validation": settings["num_val"], "test": settings["num_test"]}
    num_classes = len(CLASS_NAMES)
    noisy = settings["noise"] != "none"
    corrupt = SimulateLabelNoise(settings["noise"], num_classes, **settings["noise_kwargs"]) if noisy else None
    for folder in ("images", "labels", "labels_noisy"):
        (root / folder).mkdir()
    lists: dict[str, list[dict[str, str]]] = {}
    pixel_rates, pair_rates = [], []
    for split, count in counts.items():
        lists[split] = []
        for i in range(count):
            stem, axcodes = f"{split}_{i:03d}.nii.gz", AXCODES[i % len(AXCODES)]
            case_seed = np.random.SeedSequence([settings["seed"], _SALT, _SPLITS[split], i])
            image, label = render_volume(np.random.default_rng(case_seed), settings["size"], settings["spacing"])
            nib.save(_nifti(image, settings["spacing"], axcodes), root / "images" / stem)
            nib.save(_nifti(label, settings["spacing"], axcodes), root / "labels" / stem)
            entry = {"image": f"images/{stem}", "label": f"labels/{stem}"}
            if split == "training":
                noisy_label = label
                if corrupt is not None:
                    corrupt.set_random_state(seed=int(case_seed.generate_state(1)[0]))
                    noisy_label = np.asarray(corrupt(label[None]))[0].astype(np.uint8)
                rates = noise_rates(noisy_label, label, num_classes=num_classes)
                pixel_rates.append(rates["pixel"])
                pair_rates.append(rates["affinity"])
                nib.save(_nifti(noisy_label, settings["spacing"], axcodes), root / "labels_noisy" / stem)
                entry = {"image": entry["image"], "label": f"labels_noisy/{stem}", "label_clean": entry["label"]}
            lists[split].append(entry)
    return {
        "name": "JCAS synthetic abdominal CT demo",
        "description": (
            "Synthetic CT volumes (HU) with liver, kidney and liver-lesion labels, anisotropic voxels and mixed "
            "orientations, made by scripts/demo_data_3d.py. 'training' labels are noisy (label_clean holds the clean "
            "ones); 'validation' and 'test' labels are clean."
        ),
        "licence": "Apache-2.0 (generated data)",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "num_classes": num_classes,
        "labels": {str(c): name for c, name in enumerate(CLASS_NAMES)},
        "generator": settings,
        "noise_rates": {"pixel": float(np.mean(pixel_rates)), "affinity": float(np.mean(pair_rates))},
        "numTraining": counts["training"],
        "numTest": counts["test"],
        **lists,
    }


def _settings(
    num_train: int,
    num_val: int,
    num_test: int,
    size: Sequence[int],
    spacing: Sequence[float],
    noise: str | None,
    seed: int,
    noise_kwargs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Validated generator settings, JSON-normalised (they are stored in the datalist and compared on reuse)."""
    if min(num_train, num_val, num_test) < 1:
        raise ValueError(f"expected at least one case per split, got {num_train}, {num_val}, {num_test}")
    if len(size) != 3 or min(size) < 16:
        raise ValueError(f"expected size (X, Y, Z) of at least 16 voxels each, got {tuple(size)}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"expected spacing of 3 positive sizes in mm, got {tuple(spacing)}")
    noise = "none" if noise is None else noise
    from .noise import NOISE_MODES

    if noise != "none" and noise not in NOISE_MODES:
        raise ValueError(f"expected noise None, 'none' or one of {NOISE_MODES}, got {noise!r}")
    kwargs = DEFAULT_NOISE_KWARGS.get(noise, {}) if noise_kwargs is None else noise_kwargs
    settings = {
        "version": 1,
        "num_train": num_train,
        "num_val": num_val,
        "num_test": num_test,
        "size": [int(s) for s in size],
        "spacing": [float(s) for s in spacing],
        "noise": noise,
        "noise_kwargs": dict(kwargs),
        "seed": seed,
    }
    return json.loads(json.dumps(settings))


def make_demo_dataset_3d(
    out_dir: str | os.PathLike,
    num_train: int = 12,
    num_val: int = 3,
    num_test: int = 4,
    size: Sequence[int] = (64, 64, 24),
    spacing: Sequence[float] = (1.5, 1.5, 4.0),
    noise: str | None = "morph",
    seed: int = 0,
    overwrite: bool = False,
    noise_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Generate the 3D demo dataset in ``out_dir``; return the path of its ``datalist.json``.

    Layout as :func:`scripts.demo_data.make_demo_dataset`: ``images/``, ``labels/`` (clean), ``labels_noisy/``
    (training only) with NIfTI files ``<split>_<index>.nii.gz`` and a decathlon ``datalist.json`` (relative paths,
    ``labels``, the ``generator`` settings, the mean ``noise_rates`` of the training labels). A case depends only on
    (``seed``, split, index); the dataset is written to a temporary folder and renamed at the end.

    Args:
        out_dir: dataset folder; must be absent or empty unless ``overwrite``.
        num_train: training cases (noisy ``label``, clean ``label_clean``).
        num_val: validation cases (clean ``label``).
        num_test: test cases (clean ``label``).
        size: (X, Y, Z) voxels of a volume in RAS order (stored orientations vary, see :data:`AXCODES`).
        spacing: voxel size in mm along X, Y, Z.
        noise: ``SimulateLabelNoise`` mode for the training labels, or None / ``"none"`` for clean ones.
        seed: seed of the volumes and of the noise.
        overwrite: replace an existing ``out_dir``.
        noise_kwargs: other ``SimulateLabelNoise`` arguments; default :data:`DEFAULT_NOISE_KWARGS` of the mode.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false.
        ValueError: invalid arguments.
    """
    settings = _settings(num_train, num_val, num_test, size, spacing, noise, seed, noise_kwargs)
    return publish_dataset(out_dir, lambda root: _write_dataset(root, settings), overwrite)


def ensure_demo_dataset_3d(
    out_dir: str | os.PathLike,
    num_train: int = 12,
    num_val: int = 3,
    num_test: int = 4,
    size: Sequence[int] = (64, 64, 24),
    spacing: Sequence[float] = (1.5, 1.5, 4.0),
    noise: str | None = "morph",
    seed: int = 0,
    noise_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Return ``out_dir/datalist.json``, generating the dataset first if it is missing (see
    :func:`make_demo_dataset_3d`); safe to call twice or from several processes at once.

    Raises:
        ValueError: the existing dataset was made with other settings.
    """
    settings = _settings(num_train, num_val, num_test, size, spacing, noise, seed, noise_kwargs)

    def make() -> str:
        return make_demo_dataset_3d(
            out_dir, num_train, num_val, num_test, size, spacing, noise, seed, False, noise_kwargs
        )

    return reuse_or_make(out_dir, settings, make)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: generate (or overwrite) the 3D demo dataset."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--num_train", type=int, default=12)
    parser.add_argument("--num_val", type=int, default=3)
    parser.add_argument("--num_test", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=3, default=(64, 64, 24), metavar=("X", "Y", "Z"))
    parser.add_argument("--spacing", type=float, nargs=3, default=(1.5, 1.5, 4.0), metavar=("X", "Y", "Z"))
    parser.add_argument("--noise", default="morph")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = make_demo_dataset_3d(
        args.out_dir,
        args.num_train,
        args.num_val,
        args.num_test,
        args.size,
        args.spacing,
        args.noise,
        args.seed,
        args.overwrite,
    )
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
