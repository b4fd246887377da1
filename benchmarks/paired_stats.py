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
"""Paired comparison of two segmentation methods: the mDice difference and its 95 % confidence interval.

Two methods trained with the same seeds are evaluated on the same test images. Their difference has two sources of
uncertainty: which test images were drawn (shared by every seed, since the images are the same) and how training
went (independent from seed to seed). Both are estimated and added:

- images: a bootstrap over the test images, the same resampled images for both methods and every seed
  (``num_boot`` draws), gives ``v_img``, the variance of the seed-mean difference from the choice of images;
- seeds: the sample variance ``s²`` of the per-seed differences gives ``v_seed = s² / S`` (S seeds);
- the interval is ``d ± t_ν · sqrt(v_img + v_seed)``, with ``ν`` Welch–Satterthwaite's degrees of freedom
  (``v_img`` counted as known exactly, so ``ν = (S - 1) (v_img + v_seed)² / v_seed²``); with one seed, the image
  part alone and the normal quantile.

mDice follows the paper (``docs/method.md``, "Metric"): per foreground class, the mean Dice over the
images whose ground truth contains it (NaN entries are images without the class), then the mean over classes. A
bootstrap draw recomputes exactly that on the resampled images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["PairedDifference", "mdice", "paired_difference", "verdict"]


def mdice(per_image: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The paper's mDice of an (images, classes) array of per-image Dice (NaN: the class is absent in that image).

    Args:
        per_image: (N, K) Dice of each image and foreground class.
        weights: (N,) how often each image counts (a bootstrap draw); None: once each.

    Returns:
        ``mean_k [Σ_i w_i D_ik / Σ_i w_i]`` over the images where ``D_ik`` is not NaN, classes without any such image
        left out (NaN if no class has one).
    """
    values = np.asarray(per_image, dtype=np.float64)
    w = np.ones(values.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    present = ~np.isnan(values)
    counts = (w[:, None] * present).sum(axis=0)
    sums = (w[:, None] * np.where(present, values, 0.0)).sum(axis=0)
    keep = counts > 0
    return float(np.mean(sums[keep] / counts[keep])) if keep.any() else float("nan")


def _mdice_draws(per_image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """:func:`mdice` for each row of a (B, N) matrix of image weights at once; (B,) values."""
    present = ~np.isnan(per_image)
    counts = weights @ present
    sums = weights @ np.where(present, per_image, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan), axis=1)


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` in mDice (fractions, not points) with its 95 % interval; ``seeds`` and ``images`` paired."""

    diff: float
    low: float
    high: float
    seeds: int
    images: int
    per_seed: tuple[float, ...]


def paired_difference(
    a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray], num_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> PairedDifference:
    """The seed-mean mDice difference ``a - b`` and its confidence interval (see the module docstring).

    Args:
        a: seed -> (N, K) per-image Dice of method a on the test images, rows in the same image order for every
            seed and both methods.
        b: the same for method b.
        num_boot: bootstrap draws over the images.
        level: coverage of the interval.
        seed: seed of the bootstrap.

    Raises:
        ValueError: no common seed, or arrays of different shapes.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no common seed: {sorted(a)} and {sorted(b)}")
    arrays = [(np.asarray(a[s], dtype=np.float64), np.asarray(b[s], dtype=np.float64)) for s in seeds]
    shape = arrays[0][0].shape
    if any(x.shape != shape or y.shape != shape for x, y in arrays):
        raise ValueError(f"per-image arrays must share one shape, got {[(x.shape, y.shape) for x, y in arrays]}")
    per_seed = np.array([mdice(x) - mdice(y) for x, y in arrays])
    diff = float(per_seed.mean())
    n = shape[0]
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(num_boot)]).astype(float)
    draws = np.mean([_mdice_draws(x, weights) - _mdice_draws(y, weights) for x, y in arrays], axis=0)
    v_img = float(np.var(draws, ddof=1))
    if len(seeds) > 1:
        v_seed = float(np.var(per_seed, ddof=1)) / len(seeds)
        total = v_img + v_seed
        dof = (len(seeds) - 1) * total**2 / v_seed**2 if v_seed > 0 else np.inf
        quantile = stats.t.ppf(0.5 + level / 2, dof) if np.isfinite(dof) else stats.norm.ppf(0.5 + level / 2)
    else:
        total, quantile = v_img, stats.norm.ppf(0.5 + level / 2)
    half = float(quantile * np.sqrt(total))
    return PairedDifference(diff, diff - half, diff + half, len(seeds), n, tuple(float(d) for d in per_seed))


def verdict(difference: PairedDifference, names: Sequence[str] = ("ahead", "level", "behind")) -> str:
    """``names[0]`` when the interval of ``a - b`` lies above 0 (a ahead of b), ``names[2]`` below 0, else
    ``names[1]``."""
    if difference.low > 0:
        return names[0]
    if difference.high < 0:
        return names[2]
    return names[1]
