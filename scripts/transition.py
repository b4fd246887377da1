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
"""Learnable noise transition matrices and the class-to-affinity transition (``docs/method.md``, "CALC")."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "NoiseTransition",
    "affinity_transition_from_class",
    "anchor_transition",
    "format_matrix",
    "prediction_confusion",
    "read_transition",
    "soft_confusion",
    "temperature_scaled",
    "transition_error",
    "transition_from_confusion",
    "transition_weight",
]

_PROB_FLOOR = 1e-4  # entries of an initial transition are floored here before the log


def _check_posteriors(probs: torch.Tensor, what: str) -> None:
    """Refuse posteriors holding a NaN or an infinity: the network that gave them diverged."""
    if not bool(torch.isfinite(probs).all()):
        bad = int((~torch.isfinite(probs)).sum())
        raise ValueError(
            f"{what}: {bad} of {probs.numel()} class posteriors are NaN or infinite: the network diverged (lower "
            "learning_rate and train again); no transition can be estimated from them"
        )


def transition_weight(
    init: float | Sequence[Sequence[float]] | torch.Tensor, num_classes: int, key: str = "transition_init"
) -> torch.Tensor:
    """The (K, K) weight ``W`` of :class:`NoiseTransition` for a scalar ``init`` or an initial transition matrix.

    Args:
        init: a number, the off-diagonal entries of ``W`` (its diagonal is 0), or a (K, K) row-stochastic matrix
            ``T``, giving ``W = log(max(T, 1e-4))`` so that ``softmax(W) ≈ T``.
        num_classes: K.
        key: what ``init`` is called in the error messages (the config key ``transition_init``, or ``T_C``).

    Raises:
        ValueError: naming ``key``: a matrix of the wrong shape, with negative or non-finite entries or rows not
            summing to 1.
    """
    matrix = torch.as_tensor(init, dtype=torch.float32)
    if matrix.ndim == 0:
        return torch.full((num_classes, num_classes), float(matrix)).fill_diagonal_(0.0)
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(
            f"{key}: expected a number or a ({num_classes}, {num_classes}) transition matrix, got shape "
            f"{tuple(matrix.shape)}"
        )
    sums = matrix.sum(dim=1)
    if (
        not bool(torch.isfinite(matrix).all())
        or (matrix < 0).any()
        or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3)
    ):
        raise ValueError(
            f"{key}: expected a row-stochastic transition matrix (entries non-negative, rows summing to 1), got "
            f"{matrix.tolist()}, row sums {[round(v, 4) for v in sums.tolist()]}"
        )
    return torch.log(matrix.clamp_min(_PROB_FLOOR))


class NoiseTransition(nn.Module):
    """A learnable row-stochastic transition matrix, ``T[i, j] = p(noisy = j | clean = i)``.

    .. math::
        T = \\operatorname{softmax}_{\\text{rows}}(W)

    Every positive row-stochastic matrix is reachable, including rows whose off-diagonal entry exceeds the diagonal
    (a class labelled as its neighbour most of the time). The published ``rownorm(I + σ(W) ⊙ (1 - I))`` cannot
    represent such a row, since it keeps every off-diagonal entry at or below the diagonal. A number ``init`` sets
    the off-diagonal entries of ``W`` (its diagonal is 0), so the diagonal starts at ``1 / (1 + (K - 1) e^init)``
    (0.948 for K = 4 and init = -4); a known or estimated (K, K) matrix as ``init`` gives ``W = log T`` (entries
    floored at 1e-4), which reproduces it. Used for ``T_C`` (K = C classes) and ``T_A`` (K = 2: 0 = different class,
    1 = same class) in the paper.

    Args:
        num_classes: K, the size of the square matrix (>= 2).
        init: the off-diagonal value of ``W``, or an initial (K, K) transition matrix.

    Example:
        >>> t_class = NoiseTransition(4)()
        >>> torch.allclose(t_class.sum(dim=1), torch.ones(4)), round(float(t_class[0, 0]), 3)
        (True, 0.948)
    """

    def __init__(self, num_classes: int, init: float | Sequence[Sequence[float]] | torch.Tensor = -4.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.weight = nn.Parameter(transition_weight(init, num_classes))

    def forward(self) -> torch.Tensor:
        """Returns the (K, K) row-stochastic matrix, in float32 whatever autocast is on."""
        return torch.softmax(self.weight.float(), dim=1)


def affinity_transition_from_class(t_class: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """The affinity transition ``T_A*`` implied by a class transition ``T_C`` and a class prior ``π``.

    Two pixels draw their clean classes independently from ``π`` and their noisy classes independently from the rows
    of ``T_C``. With ``s = Σ π_i²`` (clean pair same class), ``v11 = Σ π_i² ‖T_C[i]‖²`` (clean same, noisy same),
    ``v10 = s - v11``, ``v01 = ‖T_Cᵀ π‖² - v11`` (clean different, noisy same) and ``v00 = 1 - s - v01``:

    .. math::
        T_A^* = \\begin{pmatrix} v_{00} / (1 - s) & v_{01} / (1 - s) \\\\ v_{10} / s & v_{11} / s \\end{pmatrix}

    Index 0 is "different class", 1 is "same class". Differentiable in ``t_class``.

    Args:
        t_class: (C, C) row-stochastic class transition, ``T_C`` in the paper.
        prior: (C,) class frequencies (normalised here); at least two classes must have mass.

    Returns:
        (2, 2) row-stochastic affinity transition.
    """
    if t_class.ndim != 2 or t_class.shape[0] != t_class.shape[1]:
        raise ValueError(f"expected a square (C, C) t_class, got {tuple(t_class.shape)}")
    if prior.shape != t_class.shape[:1]:
        raise ValueError(f"expected a ({t_class.shape[0]},) prior, got {tuple(prior.shape)}")
    prior = prior.to(t_class) / prior.sum()
    prior_sq = prior**2
    same = prior_sq.sum()
    if not 0 < same < 1:
        raise ValueError(f"the prior needs mass on at least two classes, got {prior.tolist()}")
    v11 = (prior_sq * (t_class**2).sum(dim=1)).sum()
    v01 = (t_class.T @ prior).pow(2).sum() - v11
    v10 = same - v11
    v00 = 1 - same - v01
    return torch.stack([torch.stack([v00, v01]) / (1 - same), torch.stack([v10, v11]) / same])


def soft_confusion(
    probs: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """``S[i, j] = Σ p_j(x)`` over the pixels ``x`` whose trusted (clean) label is ``i``: with ``p`` a model trained on
    noisy labels, ``rownorm(S)`` estimates ``T_C[i, j] = p(noisy = j | clean = i)`` (gold loss correction, Hendrycks
    et al., NeurIPS 2018; see :func:`transition_from_confusion`).

    Args:
        probs: BCH[WD] class probabilities of a model trained on the noisy labels.
        labels: B1H[WD] or BH[WD] trusted integer labels at the same size.
        num_classes: C.
        ignore_index: label value left out.

    Returns:
        (C, C) float64 sums, rows clean, columns noisy.

    Raises:
        ValueError: ``probs`` holds a NaN or an infinity (the network diverged), or the shapes or labels are wrong.
    """
    _check_posteriors(probs, "soft_confusion")
    if labels.ndim == probs.ndim:
        labels = labels[:, 0]
    if labels.shape != probs.shape[:1] + probs.shape[2:] or probs.shape[1] != num_classes:
        raise ValueError(f"labels {tuple(labels.shape)} do not match probabilities {tuple(probs.shape)}")
    flat = probs.detach().double().movedim(1, -1).reshape(-1, num_classes)
    labels = labels.reshape(-1).long()
    keep = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
    labels, flat = labels[keep], flat[keep]
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.unique().tolist()}")
    return torch.zeros(num_classes, num_classes, dtype=torch.float64, device=flat.device).index_add_(0, labels, flat)


def prediction_confusion(
    probs: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """``S[i, j]`` = the number of pixels the network assigns to class ``i`` (``argmax p``) whose given (noisy) label
    is ``j``. With a warm-up network that predicts the clean class where most labels agree (a bounded loss does not
    fit the minority of flipped labels, and early learning precedes memorisation), ``rownorm(S)`` estimates
    ``T_C[i, j] = p(noisy = j | clean = i)`` from the training labels alone (:func:`transition_from_confusion`): the
    predictions stand in for the clean labels of Hendrycks et al.'s gold correction.

    Args:
        probs: BCH[WD] class probabilities of the warm-up network.
        labels: B1H[WD] or BH[WD] given integer labels at the same size.
        num_classes: C.
        ignore_index: label value left out.

    Returns:
        (C, C) float64 counts, rows predicted (clean), columns given (noisy).

    Raises:
        ValueError: ``probs`` holds a NaN or an infinity (the network diverged), or the shapes or labels are wrong.

    Example:
        >>> probs = torch.tensor([[0.9, 0.8, 0.2], [0.1, 0.2, 0.8]])[None, :, None]  # B=1, C=2, 1 x 3 pixels
        >>> prediction_confusion(probs, torch.tensor([[[0, 1, 1]]]), 2)
        tensor([[1., 1.],
                [0., 1.]], dtype=torch.float64)
    """
    _check_posteriors(probs, "prediction_confusion")
    if labels.ndim == probs.ndim:
        labels = labels[:, 0]
    if labels.shape != probs.shape[:1] + probs.shape[2:] or probs.shape[1] != num_classes:
        raise ValueError(f"labels {tuple(labels.shape)} do not match probabilities {tuple(probs.shape)}")
    predicted = probs.detach().argmax(dim=1).reshape(-1)
    labels = labels.reshape(-1).long().to(predicted.device)
    keep = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
    predicted, labels = predicted[keep], labels[keep]
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.unique().tolist()}")
    counts = torch.bincount(predicted * num_classes + labels, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).double()


def transition_from_confusion(sums: torch.Tensor) -> torch.Tensor:
    """Row-normalised (C, C) :func:`soft_confusion` sums; a class with no trusted pixel keeps an identity row."""
    sums = sums.double()
    totals = sums.sum(dim=1, keepdim=True)
    identity = torch.eye(sums.shape[0], dtype=sums.dtype, device=sums.device)
    return torch.where(totals > 0, sums / totals.clamp_min(1e-12), identity).float()


def anchor_transition(probs: torch.Tensor, prior: torch.Tensor, top_fraction: float = 0.1) -> torch.Tensor:
    """Anchor-point estimate of ``T_C`` from the posteriors of a network trained on the noisy labels.

    A network fitted to noisy labels predicts ``p(ỹ | x) = p(y | x) T_C``; at an anchor pixel of clean class ``i``
    (``p(y = i | x) ≈ 1``) it predicts the row ``T_C[i]`` (Patrini et al., "Making deep neural networks robust to
    label noise: a loss correction approach", CVPR 2017). The pixels most likely to be anchors of class ``i`` are
    those with the largest predicted ``p(ỹ = i | x)``: row ``i`` is the mean posterior of the top ``top_fraction``
    of the pixels expected to carry noisy label ``i`` (``k_i = top_fraction · prior_i · M``, at least 1), which
    stays an anchor for a small class and averages out single over-confident pixels. Unlike an argmax rule it also
    recovers a row whose off-diagonal entry is the largest (a class labelled as its neighbour most of the time).

    Args:
        probs: (M, C) class posteriors of M pixels (any subsample of the training pixels).
        prior: (C,) class frequencies of the noisy training labels.
        top_fraction: share of each class's expected pixels averaged into its row, in (0, 1].

    Returns:
        (C, C) float32 row-stochastic estimate, rows clean, columns noisy.

    Raises:
        ValueError: ``probs`` holds a NaN or an infinity (the network diverged), or the arguments are wrong.
    """
    if probs.ndim != 2 or prior.shape != probs.shape[1:]:
        raise ValueError(f"expected (M, C) probs and a (C,) prior, got {tuple(probs.shape)} and {tuple(prior.shape)}")
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must lie in (0, 1], got {top_fraction}")
    _check_posteriors(probs, "anchor_transition")
    probs = probs.detach().double()
    prior = prior.to(probs) / prior.sum()
    rows = []
    for i in range(probs.shape[1]):
        k = int(min(probs.shape[0], max(1, round(top_fraction * float(prior[i]) * probs.shape[0]))))
        rows.append(probs[probs[:, i].topk(k).indices].mean(dim=0))
    estimate = torch.stack(rows)
    return (estimate / estimate.sum(dim=1, keepdim=True)).float()


def temperature_scaled(
    probs: torch.Tensor, labels: torch.Tensor, ignore_index: int | None = None
) -> tuple[torch.Tensor, float]:
    """Posteriors ``p`` rescaled to ``p^(1/τ) / Σ p^(1/τ)`` with the temperature τ that maximises the likelihood of
    ``labels`` (temperature scaling, Guo et al., ICML 2017, fitted here to the noisy labels of the same pixels).

    Args:
        probs: (M, C) class probabilities.
        labels: (M,) integer labels of the same pixels (``ignore_index`` left out of the fit).
        ignore_index: label value not fitted.

    Returns:
        The (M, C) rescaled probabilities and τ (searched in [0.05, 20]).
    """
    from scipy.optimize import minimize_scalar

    log_p = torch.log(probs.double().clamp_min(1e-12))
    labels = labels.long()
    keep = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
    keep &= (labels >= 0) & (labels < probs.shape[1])
    fit_log_p, fit_labels = log_p[keep], labels[keep]

    def nll(log_tau: float) -> float:
        scaled = torch.log_softmax(fit_log_p / float(np.exp(log_tau)), dim=1)
        return float(-scaled.gather(1, fit_labels[:, None]).mean())

    if fit_labels.numel() == 0:
        return probs, 1.0
    tau = float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))
    return torch.softmax(log_p / tau, dim=1).to(probs.dtype), tau


def transition_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean row L1 distance ``mean_i Σ_j |T̂[i, j] - T[i, j]|`` between two (C, C) transitions (0 to 2)."""
    reference = torch.as_tensor(reference, dtype=torch.float64)
    return float((estimate.detach().double().cpu() - reference).abs().sum(dim=1).mean())


def format_matrix(matrix: torch.Tensor | Sequence[Sequence[float]], rows: bool = False) -> str:
    """A (K, K) matrix with 3 decimals: on one line, rows separated by ``;`` (``rows``: one row per line).

    Example:
        >>> format_matrix([[0.9, 0.1], [0.25, 0.75]])
        '[0.900, 0.100; 0.250, 0.750]'
    """
    values = matrix.tolist() if isinstance(matrix, torch.Tensor) else [list(row) for row in matrix]
    cells = [", ".join(f"{v:.3f}" for v in row) for row in values]
    return "\n".join(cells) if rows else "[" + "; ".join(cells) + "]"


def read_transition(value: str | Sequence[Sequence[float]] | None) -> torch.Tensor | None:
    """A reference (C, C) class transition from a matrix, from a ``scripts.make_noisy`` report
    (``noise_report.json``: its ``overall["transition"]``) or from a JSON file holding the matrix; None stays None.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a JSON file that holds no matrix.
    """
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        if not os.path.isfile(value):
            raise FileNotFoundError(f"reference_transition: no file '{value}'")
        with open(value) as f:
            content = json.load(f)
        if isinstance(content, dict):
            content = content.get("overall", {}).get("transition")
        if not isinstance(content, list):
            raise ValueError(f"reference_transition: '{value}' holds no matrix (nor a make_noisy report's)")
        value = content
    return torch.as_tensor(value, dtype=torch.float32)
