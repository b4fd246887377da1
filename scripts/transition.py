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
"""Learnable noise transition matrices and the class-to-affinity transition (sections 3 of JCAS_METHOD.md)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "NoiseTransition",
    "affinity_transition_from_class",
    "soft_confusion",
    "transition_from_confusion",
    "transition_weight",
]

_RATIO_CLIP = 1e-4


def transition_weight(init: float | Sequence[Sequence[float]] | torch.Tensor, num_classes: int) -> torch.Tensor:
    """The (K, K) weight ``W`` of :class:`NoiseTransition` for a scalar ``init`` or an initial transition matrix.

    Args:
        init: a number (every entry of ``W``) or a (K, K) row-stochastic matrix ``T`` with a positive diagonal,
            giving ``W[i, j] = logit(clip(T[i, j] / T[i, i]))`` off the diagonal (0 on it, where it is unused).
        num_classes: K.

    Raises:
        ValueError: a matrix of the wrong shape, with negative entries, rows not summing to 1 or a zero diagonal.
    """
    matrix = torch.as_tensor(init, dtype=torch.float32)
    if matrix.ndim == 0:
        return torch.full((num_classes, num_classes), float(matrix))
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(f"an initial transition must be ({num_classes}, {num_classes}), got {tuple(matrix.shape)}")
    if (matrix < 0).any() or not torch.allclose(matrix.sum(dim=1), torch.ones(num_classes), atol=1e-3):
        raise ValueError(f"an initial transition must be non-negative with rows summing to 1, got {matrix.tolist()}")
    diagonal = torch.diagonal(matrix)
    if (diagonal <= 0).any():
        raise ValueError(f"an initial transition needs a positive diagonal, got {diagonal.tolist()}")
    ratio = (matrix / diagonal[:, None]).clamp(_RATIO_CLIP, 1 - _RATIO_CLIP)
    return torch.logit(ratio).fill_diagonal_(0.0)


class NoiseTransition(nn.Module):
    """A learnable row-stochastic transition matrix, ``T[i, j] = p(noisy = j | clean = i)``.

    .. math::
        T = \\operatorname{rownorm}\\big(I + \\sigma(W) \\odot (1 - I)\\big)

    A number ``init`` initialises every entry of ``W``, so the diagonal starts at ``1 / (1 + (K - 1) σ(init))``
    (0.737 for K = 4 and init = -2, 0.949 for init = -4). A known or estimated (K, K) row-stochastic matrix as
    ``init`` gives ``W[i, j] = logit(T[i, j] / T[i, i])``, which reproduces it exactly when every off-diagonal
    entry lies below its row's diagonal (ratios are clipped to [1e-4, 1 - 1e-4]). Used for ``T_C`` (K = C classes)
    and ``T_A`` (K = 2: 0 = different class, 1 = same class) in the paper.

    Args:
        num_classes: K, the size of the square matrix (>= 2).
        init: initial value of every entry of ``W``, or an initial (K, K) transition matrix.

    Example:
        >>> NoiseTransition(4)().sum(dim=1)
        tensor([1., 1., 1., 1.], grad_fn=<SumBackward1>)
    """

    def __init__(self, num_classes: int, init: float | Sequence[Sequence[float]] | torch.Tensor = -2.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.weight = nn.Parameter(transition_weight(init, num_classes))
        self.register_buffer("identity", torch.eye(num_classes), persistent=False)

    def forward(self) -> torch.Tensor:
        """Returns the (K, K) row-stochastic matrix."""
        t = self.identity + torch.sigmoid(self.weight) * (1 - self.identity)
        return t / t.sum(dim=1, keepdim=True)


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
    """
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


def transition_from_confusion(sums: torch.Tensor) -> torch.Tensor:
    """Row-normalised (C, C) :func:`soft_confusion` sums; a class with no trusted pixel keeps an identity row."""
    sums = sums.double()
    totals = sums.sum(dim=1, keepdim=True)
    identity = torch.eye(sums.shape[0], dtype=sums.dtype, device=sums.device)
    return torch.where(totals > 0, sums / totals.clamp_min(1e-12), identity).float()
