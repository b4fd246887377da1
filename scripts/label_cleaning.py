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
"""Which given labels are suspect, and what they should be: scores and corrections from a trained network's clean
posteriors ``p`` and the noise model JCAS learned (``T_C``, ``T_A``), for ``configs/clean_labels.json``.

Per pixel, with ``ỹ`` the given label and ``p`` the network's class probabilities (eval mode):

.. math::
    \\tilde p = p\\, T_C, \\qquad \\text{suspect} \\iff \\tilde p[\\tilde y] < \\tau

``p̃[c]`` is the probability that an annotator following the learned noise model draws ``c`` at that pixel, so a
given label is suspect where the model and its noise model make it improbable (``τ`` = ``suspect_threshold``);
a confusion the noise model expects everywhere (a class labelled as its neighbour 60 % of the time) is not.
The corrected label is the most probable clean class given the image and the given label,
``argmax_y p[y] T_C[y, ỹ]`` (Bayes with the noise model: where ``T_C`` expects a confusion the network's belief
undoes it), and the network's own ``argmax p`` where the given label is suspect (the noise model cannot explain it).
With ``T_C = I`` the first rule keeps every label and only the suspect pixels change.

A wrong annotation is a region, not a one-pixel jitter of a boundary (which the network, at its own resolution, gets
wrong on clean masks too): the suspect mask is opened (eroded, then dilated, by a cube of side ``2 r + 1``,
``r = suspect_opening_radius``, 1 by default), so suspect regions thinner than ``2 r + 1`` pixels neither count nor
change. Chosen on a development split (``docs/benchmarks/label_cleaning.md``): without it the corrections of thin
slivers on clean masks cost more Dice than the corrections of the wrong ones gained.

Pair level (the paper's affinity view): on the affinity grid, two pixels ``i, j`` are the same class with probability
``s = p_i · p_j`` (independent posteriors); the noise model draws "same" with ``s̃ = (1 - s) T_A[0, 1] + s T_A[1, 1]``,
and the given pair label ``[ỹ_i = ỹ_j]`` is suspect where its probability under ``s̃`` is below ``τ``.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "case_scores",
    "changed_area",
    "class_scores",
    "corrected_label",
    "foreground_dice",
    "given_label_probability",
    "noisy_label_probabilities",
    "open_mask",
    "pair_suspicion",
    "read_transitions",
    "suspect_pixels",
    "suspicion_score",
]

logger = logging.getLogger(__name__)


def _check(probs: torch.Tensor, label: torch.Tensor) -> None:
    if probs.ndim < 2 or label.shape != probs.shape[1:]:
        raise ValueError(
            f"expected CH[WD] probabilities and an H[WD] label of the same size, got {tuple(probs.shape)} and "
            f"{tuple(label.shape)}"
        )


def noisy_label_probabilities(probs: torch.Tensor, t_class: torch.Tensor) -> torch.Tensor:
    """``p̃ = p T_C``: probs CH[WD] clean posteriors, t_class (C, C) rows clean, columns noisy; returns CH[WD]."""
    if t_class.shape != (probs.shape[0],) * 2:
        raise ValueError(f"expected a ({probs.shape[0]}, {probs.shape[0]}) t_class, got {tuple(t_class.shape)}")
    return torch.einsum("c...,cd->d...", probs.float(), t_class.float().to(probs.device))


def given_label_probability(noisy_probs: torch.Tensor, label: torch.Tensor, ignore_index: int | None = None):
    """``p̃[ỹ]`` at each pixel: noisy_probs CH[WD], label H[WD] integers; 1 at ``ignore_index`` pixels."""
    _check(noisy_probs, label)
    label = label.long()
    ignored = label == ignore_index if ignore_index is not None else torch.zeros_like(label, dtype=torch.bool)
    index = torch.where(ignored, 0, label).clamp(0, noisy_probs.shape[0] - 1)
    value = torch.gather(noisy_probs, 0, index[None])[0]
    return torch.where(ignored, torch.ones_like(value), value)


def suspect_pixels(
    probs: torch.Tensor,
    label: torch.Tensor,
    t_class: torch.Tensor,
    threshold: float = 0.1,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """H[WD] bool: ``p̃[ỹ] < threshold`` with ``p̃ = p T_C`` (never at ``ignore_index`` pixels).

    Example:
        >>> probs = torch.tensor([[0.95, 0.1], [0.05, 0.9]])[:, None]  # 2 classes, 1 x 2 pixels
        >>> suspect_pixels(probs, torch.tensor([[1, 1]]), torch.eye(2))
        tensor([[ True, False]])
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"suspect_threshold: expected a probability in (0, 1], got {threshold}")
    p_given = given_label_probability(noisy_label_probabilities(probs, t_class), label, ignore_index)
    return p_given < threshold


def open_mask(mask: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """The binary opening of an H[WD] bool ``mask`` by a cube of side ``2 radius + 1`` (``radius`` 0: the mask).

    .. math::
        \\operatorname{open}(M) = (M \\ominus B) \\oplus B

    Max-pooling does both steps (the erosion as the complement's dilation); outside the image counts as in the mask
    for the erosion, so a region touching the border is not eaten from that side.

    Example:
        >>> mask = torch.zeros(5, 7, dtype=torch.bool)
        >>> mask[1:4, 1:4] = True  # a 3 x 3 square stays, a 1-pixel line does not
        >>> mask[2, 5:7] = True
        >>> open_mask(mask).sum().item()
        9
    """
    if radius < 0:
        raise ValueError(f"suspect_opening_radius: expected an integer >= 0, got {radius}")
    if radius == 0 or not bool(mask.any()):
        return mask
    if mask.ndim not in (2, 3):
        raise ValueError(f"expected an H[WD] mask of 2 or 3 dims, got {tuple(mask.shape)}")
    pool = F.max_pool3d if mask.ndim == 3 else F.max_pool2d
    size = 2 * radius + 1
    x = mask[None, None].float()
    eroded = 1.0 - pool(1.0 - x, size, stride=1, padding=radius)
    return pool(eroded, size, stride=1, padding=radius)[0, 0] > 0.5


def corrected_label(
    probs: torch.Tensor,
    label: torch.Tensor,
    t_class: torch.Tensor,
    suspect: torch.Tensor,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """H[WD] int64: ``argmax p`` where ``suspect``, else ``argmax_y p[y] T_C[y, ỹ]``; ``ignore_index`` kept.

    Args:
        probs: CH[WD] clean posteriors.
        label: H[WD] given labels.
        t_class: (C, C) ``T_C``.
        suspect: H[WD] bool, see :func:`suspect_pixels`.
        ignore_index: label value left as it is.
    """
    _check(probs, label)
    label = label.long()
    ignored = label == ignore_index if ignore_index is not None else torch.zeros_like(label, dtype=torch.bool)
    safe = torch.where(ignored, 0, label).clamp(0, probs.shape[0] - 1)
    likelihood = t_class.float().to(probs.device)[:, safe]  # C, H[WD]: T_C[y, ỹ] for every clean y
    bayes = (probs.float() * likelihood).argmax(dim=0)
    out = torch.where(suspect, probs.argmax(dim=0), bayes)
    return torch.where(ignored, label, out)


def _region(label: torch.Tensor, corrected: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Pixels whose given or corrected label is one of ``classes``."""
    wanted = torch.as_tensor(list(classes), device=label.device)
    return torch.isin(label, wanted) | torch.isin(corrected, wanted)


def suspicion_score(
    suspect: torch.Tensor, label: torch.Tensor, corrected: torch.Tensor, num_classes: int, background: int = 0
) -> float:
    """The case score: the share of suspect pixels among those whose given or corrected label is foreground.

    .. math::
        s = |S \\cap F| / |F|, \\quad F = \\{x : \\tilde y(x) \\ne 0 \\lor \\hat y(x) \\ne 0\\}

    Normalising by the foreground rather than the whole image keeps a small structure's wrong mask as visible as a
    large one's; 0 when neither label has foreground.
    """
    region = _region(label, corrected, [c for c in range(num_classes) if c != background])
    count = int(region.sum())
    return float((suspect & region).sum()) / count if count else 0.0


def class_scores(suspect: torch.Tensor, label: torch.Tensor, corrected: torch.Tensor, num_classes: int) -> list:
    """Per class ``c``: the share of suspect pixels among those given or corrected to ``c`` (None: neither)."""
    scores = []
    for c in range(num_classes):
        region = (label == c) | (corrected == c)
        count = int(region.sum())
        scores.append(float((suspect & region).sum()) / count if count else None)
    return scores


def changed_area(label: torch.Tensor, corrected: torch.Tensor, num_classes: int) -> list[int]:
    """Per class ``c``: pixels (voxels) that are ``c`` in one of the two labels and not in the other."""
    return [int(((label == c) ^ (corrected == c)).sum()) for c in range(num_classes)]


def foreground_dice(a: torch.Tensor, b: torch.Tensor, num_classes: int, background: int = 0) -> float:
    """Mean Dice ``2|A∩B| / (|A| + |B|)`` over the foreground classes present in ``a`` or ``b`` (1 if none)."""
    values = []
    for c in range(num_classes):
        if c == background:
            continue
        in_a, in_b = a == c, b == c
        total = int(in_a.sum()) + int(in_b.sum())
        if total:
            values.append(2.0 * float((in_a & in_b).sum()) / total)
    return sum(values) / len(values) if values else 1.0


def pair_suspicion(
    probs: torch.Tensor,
    label: torch.Tensor,
    corrected: torch.Tensor,
    t_affinity: torch.Tensor,
    grid: Sequence[int],
    threshold: float = 0.1,
    num_pairs: int = 65536,
    seed: int = 0,
    ignore_index: int | None = None,
    background: int = 0,
) -> float:
    """The share of suspect pixel pairs touching the foreground, on the affinity grid, from ``num_pairs`` pairs.

    ``p`` is average-pooled and the labels nearest-sampled to ``grid`` (as the network and the affinity loss see
    them). A pair is ``i`` drawn uniformly among the grid pixels whose given or corrected label is foreground and
    ``j`` uniformly among all labelled ones (with replacement, from a generator seeded with ``seed``), pairs of a pixel
    with itself dropped: an unbiased estimate, standard error at most ``0.5 / sqrt(num_pairs)``, of the share over all
    such pairs of those whose given pair label has probability ``< threshold`` under
    ``s̃ = (1 - s) T_A[0, 1] + s T_A[1, 1]``, ``s = p_i · p_j``.

    Args:
        probs: CH[WD] clean posteriors.
        label, corrected: H[WD] given and corrected labels.
        t_affinity: (2, 2) ``T_A`` (0 = different, 1 = same).
        grid: the affinity grid, one size per spatial dim.
        threshold: ``τ``.
        num_pairs: pairs drawn.
        seed: seed of the draw (the case's index: the estimate does not depend on the process that scores it).
        ignore_index: label value left out.
        background: the background class.

    Returns:
        the share in [0, 1]; 0 when no grid pixel is foreground.
    """
    _check(probs, label)
    if t_affinity.shape != (2, 2):
        raise ValueError(f"expected a (2, 2) t_affinity, got {tuple(t_affinity.shape)}")
    grid = tuple(int(g) for g in grid)
    if len(grid) != probs.ndim - 1:
        raise ValueError(f"expected an affinity grid of {probs.ndim - 1} sizes, got {list(grid)}")
    pooled = F.adaptive_avg_pool3d if len(grid) == 3 else F.adaptive_avg_pool2d
    p = pooled(probs.float()[None], grid)[0].flatten(1).T  # N, C
    p = p / p.sum(dim=1, keepdim=True).clamp_min(1e-12)

    def to_grid(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[None, None].float(), size=grid, mode="nearest")[0, 0].long().flatten()

    y, y_hat = to_grid(label), to_grid(corrected)
    valid = y != ignore_index if ignore_index is not None else torch.ones_like(y, dtype=torch.bool)
    region = valid & ((y != background) | (y_hat != background))
    if not bool(region.any()):
        return 0.0
    generator = torch.Generator().manual_seed(int(seed))
    i = torch.multinomial(region.float().cpu(), num_pairs, replacement=True, generator=generator).to(p.device)
    j = torch.multinomial(valid.float().cpu(), num_pairs, replacement=True, generator=generator).to(p.device)
    same = (p[i] * p[j]).sum(dim=1)
    t = t_affinity.float().to(p.device)
    noisy_same = (1 - same) * t[0, 1] + same * t[1, 1]
    given_same = y[i] == y[j]
    prob_given = torch.where(given_same, noisy_same, 1 - noisy_same)
    distinct = i != j  # a pixel paired with itself says nothing
    return float((prob_given < threshold)[distinct].float().mean()) if bool(distinct.any()) else 0.0


def case_scores(
    probs: torch.Tensor,
    label: torch.Tensor,
    t_class: torch.Tensor,
    t_affinity: torch.Tensor,
    grid: Sequence[int],
    threshold: float = 0.1,
    num_pairs: int = 65536,
    seed: int = 0,
    ignore_index: int | None = None,
    opening_radius: int = 1,
    min_score: float = 0.0,
) -> tuple[torch.Tensor, dict]:
    """The corrected label and every score of one case (what a row of ``ranking.csv`` holds).

    Args:
        probs: CH[WD] clean posteriors (renormalised over C here).
        label: H[WD] given labels.
        t_class, t_affinity: the noise model, (C, C) and (2, 2).
        grid, threshold, num_pairs, seed, ignore_index: see :func:`pair_suspicion`.
        opening_radius: the suspect mask is opened with :func:`open_mask` of this radius (0: not).
        min_score: a case whose ``score`` is below it keeps its given label (``clean_min_score``): on a mask that
            is right, every change is the network's own error.

    Returns:
        the H[WD] corrected label, and ``score`` (:func:`suspicion_score`), ``pair_score``
        (:func:`pair_suspicion`), ``pixel_share`` (suspect share of the labelled pixels), ``class_scores``,
        ``changed`` (per class, :func:`changed_area`) and ``dice`` (:func:`foreground_dice` of given and corrected).
    """
    _check(probs, label)
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"clean_min_score: expected a share in [0, 1], got {min_score!r}")
    probs = probs.float().clamp_min(0)
    probs = probs / probs.sum(dim=0, keepdim=True).clamp_min(1e-12)
    label = label.long()
    num_classes = probs.shape[0]
    suspect = open_mask(suspect_pixels(probs, label, t_class, threshold, ignore_index), opening_radius)
    corrected = corrected_label(probs, label, t_class, suspect, ignore_index)
    labelled = int((label != ignore_index).sum()) if ignore_index is not None else label.numel()
    scores = {  # from the correction the model proposes, whether the case then keeps its label or not
        "score": suspicion_score(suspect, label, corrected, num_classes),
        "pair_score": pair_suspicion(
            probs, label, corrected, t_affinity, grid, threshold, num_pairs, seed, ignore_index
        ),
        "pixel_share": float(suspect.sum()) / max(labelled, 1),
        "class_scores": class_scores(suspect, label, corrected, num_classes),
    }
    if scores["score"] < min_score:
        corrected = label.clone()
    scores["changed"] = changed_area(label, corrected, num_classes)
    scores["dice"] = foreground_dice(label, corrected, num_classes)
    return corrected, scores


def _from_checkpoint(path: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor] | str:
    """``(T_C, T_A)`` from a training checkpoint's ``"loss"`` state, or why there are none."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    loss = state.get("loss", {}) if isinstance(state, dict) else {}
    found = {k.rsplit(".", 2)[-2]: v for k, v in loss.items() if k.endswith(("t_class.weight", "t_affinity.weight"))}
    if set(found) != {"t_class", "t_affinity"}:
        return f"'{path}' holds no learned transitions (a loss other than jcas)"
    correction = [v for k, v in loss.items() if k.endswith("_correction")]
    if correction and not bool(correction[0]):
        return f"'{path}': training never reached the correction stage, the transitions were not learned"
    t_class, t_affinity = (torch.softmax(found[k].float(), dim=1) for k in ("t_class", "t_affinity"))
    if t_class.shape != (num_classes, num_classes) or t_affinity.shape != (2, 2):
        raise ValueError(
            f"'{path}': expected T_C ({num_classes}, {num_classes}) and T_A (2, 2) in 'loss', got "
            f"{tuple(t_class.shape)} and {tuple(t_affinity.shape)}"
        )
    return t_class, t_affinity


def _from_json(path: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    with open(path) as f:
        record = json.load(f)
    try:
        t_class = torch.as_tensor(record["T_C"], dtype=torch.float32)
        t_affinity = torch.as_tensor(record["T_A"], dtype=torch.float32)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"'{path}': expected keys 'T_C' and 'T_A' holding matrices ({err})") from None
    if t_class.shape != (num_classes, num_classes) or t_affinity.shape != (2, 2):
        raise ValueError(
            f"'{path}': expected T_C ({num_classes}, {num_classes}) and T_A (2, 2), got {tuple(t_class.shape)} and "
            f"{tuple(t_affinity.shape)}"
        )
    return t_class, t_affinity


def read_transitions(
    ckpt_dir: str | None, output_dir: str | None, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The learned noise model ``(T_C, T_A, source)`` of a training run, identity when there is none.

    Looked for, in order: ``ckpt_dir/checkpoint_final.pt``, the newest ``ckpt_dir/checkpoint_epoch=N.pt`` (highest
    N), ``output_dir/transitions.json`` (written by :class:`scripts.handlers.CALCStatsHandler`). A checkpoint whose
    loss has no transitions (``loss_type`` other than jcas) or never reached the correction stage is passed over;
    with no source the identity is returned and a warning logged: the scores are then the network's alone.

    Raises:
        ValueError: a source whose matrices are not (C, C) and (2, 2), naming the file.
    """
    reasons = []
    final = os.path.join(ckpt_dir, "checkpoint_final.pt") if ckpt_dir else None
    epochs = glob.glob(os.path.join(glob.escape(ckpt_dir), "checkpoint_epoch=*.pt")) if ckpt_dir else []
    epochs.sort(key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[-1]), reverse=True)
    for path in ([final] if final and os.path.isfile(final) else []) + epochs[:1]:
        found = _from_checkpoint(path, num_classes)
        if not isinstance(found, str):
            logger.info(f"clean_labels: noise model from '{path}'")
            return (*found, path)
        reasons.append(found)
    record = os.path.join(output_dir, "transitions.json") if output_dir else None
    if record and os.path.isfile(record):
        logger.info(f"clean_labels: noise model from '{record}'")
        return (*_from_json(record, num_classes), record)
    reasons.append(f"no checkpoint in '{ckpt_dir}' and no '{record}'")
    logger.warning(
        "clean_labels: no learned transitions (" + "; ".join(reasons) + "): using T_C = I and T_A = I, the scores "
        "and corrections are the network's own"
    )
    return torch.eye(num_classes), torch.eye(2), "identity"
