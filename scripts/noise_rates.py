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
"""Pixel-wise (class) and pair-wise (affinity) noise rates of a noisy label against its clean label.

Guo & Yuan (MICCAI 2022) observe that the affinity noise rate is much lower than the pixel noise rate for the same
labels; this module measures both without ever building the N x N pair matrix, and the empirical class transition
(the row-normalised clean-to-noisy contingency table).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from monai.config import NdarrayOrTensor
from monai.utils import convert_data_type

__all__ = ["class_dice", "confusion_matrix", "empirical_transition", "noise_rates", "pair_counts"]


def confusion_matrix(
    noisy: NdarrayOrTensor, clean: NdarrayOrTensor, num_classes: int | None = None, ignore_index: int | None = None
) -> np.ndarray:
    """(C, C) int64 contingency table of one label map: ``confusion[i, j]`` = pixels of clean class i, noisy class j.

    Args:
        noisy: noisy class map of any shape, e.g. 1H[WD].
        clean: clean class map, same shape.
        num_classes: C; default max label + 1.
        ignore_index: label value (in either map) whose pixels are left out.

    Raises:
        ValueError: shapes differ, or values outside 0..C-1 other than ``ignore_index``.
    """
    return _count(*_valid_pixels(noisy, clean, num_classes, ignore_index))


def empirical_transition(confusion: np.ndarray | list[list[int]]) -> np.ndarray:
    """Row-normalised (C, C) contingency table, rows clean, columns noisy: ``T[i, j]`` = p(noisy j | clean i).

    A class absent from the clean labels (an all-zero row) gets the identity row. Float64.

    Raises:
        ValueError: ``confusion`` is not a square matrix of non-negative counts.
    """
    counts = np.asarray(confusion, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or (counts < 0).any():
        raise ValueError(f"expected a C x C table of non-negative counts, got shape {counts.shape}")
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.maximum(totals, 1.0), np.eye(counts.shape[0]))


def class_dice(confusion: np.ndarray | list[list[int]]) -> list[float | None]:
    """Per class ``c``, the Dice of the noisy against the clean map, ``2 n_cc / (n_c. + n_.c)`` from the C x C
    counts (rows clean, columns noisy); None for a class absent from both maps."""
    counts = np.asarray(confusion, dtype=np.float64)
    sizes = counts.sum(axis=1) + counts.sum(axis=0)
    return [None if s == 0 else float(2 * counts[c, c] / s) for c, s in enumerate(sizes)]


def pair_counts(confusion: np.ndarray) -> tuple[int, int, int, int]:
    """Count ordered pairs (i, j), i != j, from the C x C (clean, noisy) contingency table, in O(C^2).

    With n_a the clean class sizes, m_b the noisy ones and M_ab the table: pairs of the same clean class
    S_clean = sum_a n_a (n_a - 1), of the same noisy class S_noisy = sum_b m_b (m_b - 1), of the same class in
    both S_both = sum_ab M_ab (M_ab - 1).

    Returns:
        (same clean -> different noisy, different clean -> same noisy, same clean, all pairs) =
        (S_clean - S_both, S_noisy - S_both, S_clean, N (N - 1)); exact python ints for any N.
    """
    same_clean = _same_pairs(confusion.sum(axis=1))
    same_noisy = _same_pairs(confusion.sum(axis=0))
    same_both = _same_pairs(confusion.ravel())
    n = int(confusion.sum())
    return same_clean - same_both, same_noisy - same_both, same_clean, n * (n - 1)


def noise_rates(
    noisy: NdarrayOrTensor,
    clean: NdarrayOrTensor,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    num_pairs: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Pixel and affinity noise rates of one label map.

    The pixel rate is the share of (non-ignored) pixels whose class changed. The affinity rate is the share of
    ordered pixel pairs (i, j), i != j, of the same image whose "same class" relation changed (ordered or
    unordered pairs give the same rate; i = j pairs are excluded as they can never change). Pairs touching an
    ignored pixel are left out. Exact by default in O(N + C^2) from the contingency table (see
    :func:`pair_counts`); with ``num_pairs`` an unbiased estimate from that many uniform random ordered pairs
    (standard error at most 0.5 / sqrt(num_pairs)).

    Args:
        noisy: noisy class map of any shape, e.g. 1H[WD].
        clean: clean class map, same shape.
        num_classes: C; default max label + 1.
        ignore_index: label value (in either map) whose pixels are left out.
        num_pairs: sample this many pairs instead of counting all.
        seed: seed of the pair sample.

    Returns:
        ``pixel``, ``affinity`` (rates in [0, 1]); ``affinity_same_to_diff`` (share of clean same-class pairs that
        became different, T_A[1, 0] in the paper's notation) and ``affinity_diff_to_same`` (T_A[0, 1]);
        ``per_class`` (pixel rate of each clean class, None if absent); ``dice`` (Dice of the noisy against the clean
        map of each class, :func:`class_dice`); ``confusion`` (C x C counts, rows clean,
        columns noisy); ``num_pixels``, ``pixels_changed``, ``num_pairs``, ``pairs_changed`` (counted or sampled),
        ``exact``.

    Raises:
        ValueError: shapes differ, or values outside 0..C-1 other than ``ignore_index``.
    """
    noisy_np, clean_np, num_classes = _valid_pixels(noisy, clean, num_classes, ignore_index)
    n = noisy_np.size
    confusion = _count(noisy_np, clean_np, num_classes)
    class_sizes = confusion.sum(axis=1)
    per_class = [None if s == 0 else float(1 - confusion[c, c] / s) for c, s in enumerate(class_sizes)]
    pixels_changed = int(n - np.trace(confusion))

    if num_pairs is None:
        same_to_diff, diff_to_same, same_clean, pairs = pair_counts(confusion)
    else:
        rng = np.random.default_rng(seed)
        pairs = int(num_pairs) if n > 1 else 0
        i = rng.integers(0, n, pairs)
        j = rng.integers(0, max(n - 1, 1), pairs)
        j = j + (j >= i)
        clean_same = clean_np[i] == clean_np[j]
        noisy_same = noisy_np[i] == noisy_np[j]
        same_to_diff = int(np.sum(clean_same & ~noisy_same))
        diff_to_same = int(np.sum(~clean_same & noisy_same))
        same_clean = int(clean_same.sum())
    diff_clean = pairs - same_clean
    return {
        "pixel": pixels_changed / n if n else 0.0,
        "affinity": (same_to_diff + diff_to_same) / pairs if pairs else 0.0,
        "affinity_same_to_diff": same_to_diff / same_clean if same_clean else 0.0,
        "affinity_diff_to_same": diff_to_same / diff_clean if diff_clean else 0.0,
        "per_class": per_class,
        "dice": class_dice(confusion),
        "confusion": confusion.tolist(),
        "num_pixels": int(n),
        "pixels_changed": pixels_changed,
        "num_pairs": int(pairs),
        "pairs_changed": int(same_to_diff + diff_to_same),
        "exact": num_pairs is None,
    }


def _valid_pixels(
    noisy: NdarrayOrTensor, clean: NdarrayOrTensor, num_classes: int | None, ignore_index: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat int64 noisy and clean values of the pixels ignored in neither map, and C (default max label + 1)."""
    if tuple(noisy.shape) != tuple(clean.shape):
        raise ValueError(f"expected noisy and clean of one shape, got {tuple(noisy.shape)} and {tuple(clean.shape)}")
    noisy_np = convert_data_type(noisy, np.ndarray)[0].ravel()
    clean_np = convert_data_type(clean, np.ndarray)[0].ravel()
    valid = np.ones(clean_np.shape, dtype=bool)
    if ignore_index is not None:
        valid = (clean_np != ignore_index) & (noisy_np != ignore_index)
    noisy_np, clean_np = noisy_np[valid].astype(np.int64), clean_np[valid].astype(np.int64)
    if num_classes is None:
        num_classes = int(max(noisy_np.max(initial=0), clean_np.max(initial=0))) + 1
    for name, values in (("noisy", noisy_np), ("clean", clean_np)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"expected {name} values in 0..{num_classes - 1}, got {values.min()}..{values.max()}")
    return noisy_np, clean_np, num_classes


def _count(noisy: np.ndarray, clean: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts of the flat (clean, noisy) value pairs."""
    counts = np.bincount(clean * num_classes + noisy, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def _same_pairs(sizes: np.ndarray) -> int:
    """Ordered pairs i != j inside groups of the given sizes: sum_k s_k (s_k - 1)."""
    return sum(int(s) * (int(s) - 1) for s in sizes)
