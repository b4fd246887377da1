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

DAR rectifies class logits with a pixel affinity built from an embedding (``docs/method.md``, "Differentiated
Affinity Reasoning"). With ``A = F Fᵀ`` the cosine affinity of the rectified-and-normalised embedding ``F``, ``A⁺``
the row-normalised ``A`` and ``A⁻`` the row-normalised ``1 - A``, the rectified logits are
``P = Q + ½ (A⁺ - A⁻) Q``.

The N×N affinity is never built: ``A Q = F (Fᵀ Q)`` and the row sums of ``A`` are ``F (Fᵀ 1)``. The ``A⁻`` term is
not taken as ``1 (1ᵀ Q) - A Q`` over ``N - F (Fᵀ 1)``: when an image's embeddings are nearly identical (an
all-background frame, a 3D patch) both cancel to rounding noise, and float32 outputs can be off by 10⁴. Instead
``1 - f_i·f_j = (1 - r_i r_j) + ½ r_i r_j ‖u_i - u_j‖²``, with ``f = r u``, ``u`` of unit norm and ``1 - r`` computed
without a subtraction, and the sums over ``j`` of ``‖u_i - u_j‖²`` come from the embedding centred on its mean
(parallel-axis theorem), so the row sums of ``1 - A`` are sums of non-negative terms, accurate however small. This
costs O(N·D·C) time and O(N·(D + C)) memory instead of O(N²). DAR runs in float32 (float64 for float64 inputs)
with autocast off.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DAR", "dar_rectify", "dar_rectify_naive", "normalize_embedding"]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, or float64 for float64 inputs: DAR's eps and its sums are meaningless in float16/bfloat16."""
    return torch.promote_types(dtype, torch.float32)


def _normalize(embedding: torch.Tensor, eps: float) -> torch.Tensor:
    embedding = torch.relu(embedding.to(_compute_dtype(embedding.dtype)))
    return embedding / (torch.linalg.vector_norm(embedding, dim=1, keepdim=True) + eps)


def normalize_embedding(embedding: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """``f ← relu(f) / (‖relu(f)‖₂ + eps)`` along the channel axis, so that ``f_i · f_j ∈ [0, 1]``.

    Computed in float32 (float64 for float64 input) with autocast off, so ``eps`` is not rounded to 0.

    Args:
        embedding: BDH[WD] affinity embedding.
        eps: added to the norm so an all-zero embedding stays zero.

    Returns:
        BDH[WD] non-negative, unit-norm (or zero) embedding, float32 (float64 for float64 input).
    """
    if torch.jit.is_scripting():  # TorchScript needs a constant autocast device; it does not autocast anyway
        return _normalize(embedding, eps)
    with torch.autocast(device_type=embedding.device.type, enabled=False):
        return _normalize(embedding, eps)


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


def _rectify(logits: torch.Tensor, embedding: torch.Tensor, eps: float) -> torch.Tensor:
    """:func:`dar_rectify` without the checks, in the compute dtype; BCN logits, BDN raw embedding, BCN out."""
    tiny = 1e-30  # floor of divisors that may be exactly 0: a normal float32, far below any meaningful norm or sum
    q = logits
    x = torch.relu(embedding)
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)  # B, 1, N
    r = norm / (norm + eps)  # ‖f_i‖: f = r u
    delta = eps / (norm + eps)  # 1 - r without cancellation
    u = x / norm.clamp_min(tiny)  # unit norm, or zero where relu killed every channel
    q1 = torch.cat([q, torch.ones_like(q[:, :1])], dim=1)  # B, C+1, N: the last row gives row sums
    rq1 = r * q1

    # A⁺ Q: A Q = r ⊙ (uᵀ Σ_j r_j u_j (Q_j, 1)) and A 1 are sums of non-negative affinities, no cancellation
    moments = torch.bmm(u, rq1.transpose(1, 2))  # B, D, C+1: Σ_j r_j u_j (Q_j, 1)ᵀ
    pos_sums = r * torch.bmm(moments.transpose(1, 2), u)  # B, C+1, N: (A Q, A 1)
    aggregate = pos_sums[:, :-1] / (pos_sums[:, -1:] + eps)

    # A⁻ Q from 1 - A_ij = (δ_i + δ_j - δ_i δ_j) + ½ r_i r_j ‖u_i - u_j‖², with δ = 1 - r. Centred on the
    # r-weighted mean m (a = u - m), Σ_j r_j ‖u_i - u_j‖² g_j = ‖a_i‖² Σ r_j g_j + Σ r_j ‖a_j‖² g_j
    # - 2 a_iᵀ Σ r_j a_j g_j for g_j = (Q_j, 1): every term is of the size of the spread of the embedding, not of 1.
    m = moments[:, :, -1:] / r.sum(dim=2, keepdim=True).clamp_min(tiny)  # B, D, 1
    a = u - m
    sq = (a * a).sum(dim=1, keepdim=True)  # B, 1, N
    spread = (
        sq * rq1.sum(dim=2, keepdim=True)
        + (rq1 * sq).sum(dim=2, keepdim=True)
        - 2 * torch.bmm(torch.bmm(a, rq1.transpose(1, 2)).transpose(1, 2), a)
    )  # B, C+1, N: Σ_j r_j ‖u_i - u_j‖² (Q_j, 1)
    neg_sums = delta * q1.sum(dim=2, keepdim=True) + (1 - delta) * (delta * q1).sum(dim=2, keepdim=True)
    neg_sums = neg_sums + 0.5 * r * spread  # B, C+1, N: ((1 - A) Q, (1 - A) 1)
    # The row sums of 1 - A are now accurate to float32's relative precision however small they are, so A⁻ Q
    # needs no threshold below which it is zeroed: that would depart from the definition, which on identical
    # embeddings still weighs the pixels (uniformly, through eps). Only rounding (and eps = 0) is guarded.
    row_neg = neg_sums[:, -1:].clamp_min(0)
    eliminate = neg_sums[:, :-1] / (row_neg + eps).clamp_min(tiny)

    # A⁺ and A⁻ have non-negative rows summing to at most 1 (eps), so A⁺Q and A⁻Q lie between the per-channel
    # extremes of Q and 0: clamping there only removes rounding, and bounds |P - Q| by max |Q|.
    low = q.amin(dim=2, keepdim=True).clamp_max(0)
    high = q.amax(dim=2, keepdim=True).clamp_min(0)
    aggregate = torch.minimum(torch.maximum(aggregate, low), high)
    eliminate = torch.minimum(torch.maximum(eliminate, low), high)
    return q + 0.5 * (aggregate - eliminate)


def dar_rectify(logits: torch.Tensor, embedding: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Rectify class logits by differentiated affinity reasoning, exactly and in linear time.

    .. math::
        P = Q + \\tfrac12 (A^+ Q - A^- Q),\\quad A^+ Q = \\frac{F(F^T Q)}{F(F^T 1)},\\quad
        A^- Q = \\frac{(1 - A) Q}{(1 - A) 1}

    ``(1 - A) Q`` and ``(1 - A) 1`` are computed without forming ``A`` and without cancellation (see the module
    docstring), in float32 (float64 for float64 inputs) with autocast off; ``|P - Q| ≤ max |Q|`` per image and
    channel.

    Args:
        logits: BCH[WD] class logits ``Q`` on the affinity grid.
        embedding: BDH[WD] affinity embedding on the same grid, raw or already normalised (it is normalised here,
            see :func:`normalize_embedding`; on a normalised embedding that step changes nothing beyond eps).
        eps: guards the embedding norm and the row sums.

    Returns:
        BCH[WD] rectified logits ``P``, same shape and dtype as ``logits``.

    Example:
        >>> p = dar_rectify(torch.randn(2, 4, 16, 16), torch.randn(2, 8, 16, 16))
        >>> p.shape
        torch.Size([2, 4, 16, 16])
    """
    _check_inputs(logits, embedding)
    dtype = _compute_dtype(torch.promote_types(logits.dtype, embedding.dtype))
    q, x = logits.flatten(2).to(dtype), embedding.flatten(2).to(dtype)
    if torch.jit.is_scripting():  # TorchScript needs a constant autocast device; it does not autocast anyway
        return _rectify(q, x, eps).to(logits.dtype).reshape(logits.shape)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return _rectify(q, x, eps).to(logits.dtype).reshape(logits.shape)


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
