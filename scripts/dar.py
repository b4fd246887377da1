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
"""Differentiated Affinity Reasoning (DAR), in linear time.

DAR rectifies class logits with a pixel affinity built from an embedding (section 2 of JCAS_METHOD.md). With
``A = F Fᵀ`` the cosine affinity of the rectified-and-normalised embedding ``F``, ``A⁺`` the row-normalised ``A``
and ``A⁻`` the row-normalised ``1 - A``, the rectified logits are ``P = Q + ½ (A⁺ - A⁻) Q``.

The N×N affinity is never built: ``A Q = F (Fᵀ Q)``, the row sums of ``A`` are ``F (Fᵀ 1)``,
``(1 - A) Q = 1 (1ᵀ Q) - A Q`` and the row sums of ``1 - A`` are ``N - F (Fᵀ 1)``. This costs O(N·D·C) time and
O(N·(D + C)) memory instead of O(N²).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DAR", "dar_rectify", "dar_rectify_naive", "normalize_embedding"]


def normalize_embedding(embedding: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """``f ← relu(f) / (‖relu(f)‖₂ + eps)`` along the channel axis, so that ``f_i · f_j ∈ [0, 1]``.

    Args:
        embedding: BDH[WD] affinity embedding.
        eps: added to the norm so an all-zero embedding stays zero.

    Returns:
        BDH[WD] non-negative, unit-norm (or zero) embedding.
    """
    embedding = torch.relu(embedding)
    return embedding / (torch.linalg.vector_norm(embedding, dim=1, keepdim=True) + eps)


def _check_inputs(logits: torch.Tensor, embedding: torch.Tensor) -> None:
    if logits.ndim not in (4, 5):
        raise ValueError(f"expected BCH[WD] logits with 2 or 3 spatial dims, got shape {list(logits.shape)}")
    if (
        embedding.ndim != logits.ndim
        or embedding.shape[:1] + embedding.shape[2:] != logits.shape[:1] + logits.shape[2:]
    ):
        raise ValueError(
            f"embedding BDH[WD] must share batch and grid with logits {list(logits.shape)}, got {list(embedding.shape)}"
        )


def dar_rectify(logits: torch.Tensor, embedding: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Rectify class logits by differentiated affinity reasoning, exactly and in linear time.

    .. math::
        P = Q + \\tfrac12 (A^+ Q - A^- Q),\\quad A^+ Q = \\frac{F(F^T Q)}{F(F^T 1)},\\quad
        A^- Q = \\frac{1(1^T Q) - F(F^T Q)}{N - F(F^T 1)}

    Args:
        logits: BCH[WD] class logits ``Q`` on the affinity grid.
        embedding: BDH[WD] raw affinity embedding on the same grid (normalised here, see :func:`normalize_embedding`).
        eps: guards the embedding norm and the row sums.

    Returns:
        BCH[WD] rectified logits ``P``, same shape and dtype as ``logits``.

    Example:
        >>> p = dar_rectify(torch.randn(2, 4, 16, 16), torch.randn(2, 8, 16, 16))
        >>> p.shape
        torch.Size([2, 4, 16, 16])
    """
    _check_inputs(logits, embedding)
    q = logits.flatten(2)  # B, C, N
    f = normalize_embedding(embedding, eps).flatten(2)  # B, D, N
    n = q.shape[-1]
    aq = torch.bmm(f.transpose(1, 2), torch.bmm(f, q.transpose(1, 2))).transpose(1, 2)  # B, C, N: (A Q)ᵀ
    row_a = torch.bmm(f.transpose(1, 2), f.sum(dim=2, keepdim=True)).transpose(1, 2)  # B, 1, N: A 1
    aggregate = aq / (row_a + eps)  # A⁺ Q
    eliminate = (q.sum(dim=2, keepdim=True) - aq) / (n - row_a + eps)  # A⁻ Q
    return (q + 0.5 * (aggregate - eliminate)).reshape(logits.shape)


def dar_rectify_naive(logits: torch.Tensor, embedding: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """The N×N definition of :func:`dar_rectify`; O(N²) memory, for tests and benchmarks only.

    Args:
        logits: BCH[WD] class logits ``Q``.
        embedding: BDH[WD] raw affinity embedding on the same grid.
        eps: guards the embedding norm and the row sums.

    Returns:
        BCH[WD] rectified logits ``P``.
    """
    _check_inputs(logits, embedding)
    q = logits.flatten(2).transpose(1, 2)  # B, N, C
    f = normalize_embedding(embedding, eps).flatten(2).transpose(1, 2)  # B, N, D
    affinity = f @ f.transpose(1, 2)  # B, N, N
    a_pos = affinity / (affinity.sum(dim=2, keepdim=True) + eps)
    a_neg = (1 - affinity) / ((1 - affinity).sum(dim=2, keepdim=True) + eps)
    p = q + 0.5 * (a_pos @ q - a_neg @ q)
    return p.transpose(1, 2).reshape(logits.shape)


class DAR(nn.Module):
    """Module form of :func:`dar_rectify` (Guo & Yuan, "Joint Class-Affinity Loss Correction", MICCAI 2022).

    Args:
        eps: guards the embedding norm and the row sums.
    """

    def __init__(self, eps: float = 1e-9) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """logits: BCH[WD], embedding: BDH[WD] on the same grid; returns BCH[WD] rectified logits."""
        return dar_rectify(logits, embedding, self.eps)
