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
"""Confident learning (C. Northcutt, L. Jiang, I. Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70, 2021), pixel-wise, as the label-cleaning benchmark's reference: written from the paper (cleanlab
is AGPL-3.0 and is neither used nor copied).

With ``p̂_j(x)`` the predicted probability of class ``j`` at pixel ``x`` and ``X_ỹ=i`` the pixels labelled ``i``:

.. math::
    t_j = \\frac{1}{|X_{\\tilde y=j}|} \\sum_{x \\in X_{\\tilde y=j}} \\hat p_j(x), \\qquad
    y^*(x) = \\operatorname{argmax}_{j:\\, \\hat p_j(x) \\ge t_j} \\hat p_j(x), \\qquad
    C[i][j] = |\\{x \\in X_{\\tilde y=i} : y^*(x) = j\\}|

(the per-class thresholds are the average self-confidence; a pixel with no class above its threshold is not
counted). The off-diagonal entries of the confident joint ``C`` are the label issues ("C_confusion" in the paper's
section 3.2); an image's score is the share of its labelled pixels that are issues. The paper's posteriors are
out-of-sample (cross-validation); here both methods read the same network, trained on the very cases it scores.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["class_thresholds", "confident_joint", "confident_labels", "issue_corrected", "issue_share", "issues"]


def _flat(probs: np.ndarray, label: np.ndarray, ignore_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(M, C) probabilities and (M,) labels of the labelled pixels of CH[WD] ``probs`` and H[WD] ``label``."""
    if probs.shape[1:] != label.shape:
        raise ValueError(f"expected CH[WD] probs and an H[WD] label of one size, got {probs.shape}, {label.shape}")
    p = probs.reshape(probs.shape[0], -1).T.astype(np.float64)
    y = label.reshape(-1).astype(np.int64)
    keep = y != ignore_index if ignore_index is not None else np.ones_like(y, dtype=bool)
    return p[keep], y[keep]


def class_thresholds(
    cases: Iterable[tuple[np.ndarray, np.ndarray]], num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """``t_j``, the mean ``p̂_j`` over every pixel labelled ``j`` in ``cases`` ((probs CH[WD], label H[WD]) pairs);
    ``inf`` for a class no pixel is labelled with (it is never confident)."""
    sums, counts = np.zeros(num_classes), np.zeros(num_classes)
    for probs, label in cases:
        p, y = _flat(probs, label, ignore_index)
        np.add.at(sums, y, p[np.arange(len(y)), y])
        counts += np.bincount(y, minlength=num_classes)[:num_classes]
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


def confident_labels(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``y*``: per pixel the most probable class among those at or above their threshold, -1 where none is
    (probs CH[WD], returns H[WD])."""
    above = probs >= thresholds.reshape(-1, *([1] * (probs.ndim - 1)))
    masked = np.where(above, probs, -np.inf)
    return np.where(above.any(axis=0), masked.argmax(axis=0), -1)


def confident_joint(
    cases: Iterable[tuple[np.ndarray, np.ndarray]],
    thresholds: np.ndarray,
    num_classes: int,
    ignore_index: int | None = None,
) -> np.ndarray:
    """The (C, C) confident joint ``C[ỹ][y*]`` counted over ``cases``."""
    joint = np.zeros((num_classes, num_classes), dtype=np.int64)
    for probs, label in cases:
        star = confident_labels(probs, thresholds)
        keep = (star >= 0) & (label != ignore_index if ignore_index is not None else True)
        np.add.at(joint, (label[keep].astype(np.int64), star[keep]), 1)
    return joint


def issues(probs: np.ndarray, label: np.ndarray, thresholds: np.ndarray, ignore_index: int | None = None):
    """H[WD] bool: the pixels in an off-diagonal entry of the confident joint (``y*`` found and not ``ỹ``)."""
    star = confident_labels(probs, thresholds)
    flagged = (star >= 0) & (star != label)
    return flagged & (label != ignore_index) if ignore_index is not None else flagged


def issue_share(probs: np.ndarray, label: np.ndarray, thresholds: np.ndarray, ignore_index: int | None = None):
    """An image's score: the share of its labelled pixels that are label issues."""
    flagged = issues(probs, label, thresholds, ignore_index)
    labelled = int((label != ignore_index).sum()) if ignore_index is not None else label.size
    return float(flagged.sum()) / max(labelled, 1)


def issue_corrected(probs: np.ndarray, label: np.ndarray, thresholds: np.ndarray, ignore_index: int | None = None):
    """The label with each issue relabelled to its ``y*`` (the paper's cleaned labels, kept rather than pruned)."""
    star = confident_labels(probs, thresholds)
    return np.where(issues(probs, label, thresholds, ignore_index), star, label)
