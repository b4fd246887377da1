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
"""Robust losses to train the bundle's network with instead of JCAS (config key ``loss_type``).

Pure functions hold the maths; :class:`GCELoss` (generalized cross-entropy) and :class:`TLoss` (Student-t NLL with
a learned tolerance) are MONAI-style ``_Loss`` modules; :class:`LogitsLoss` applies a plain loss to the
``"logits"`` of :class:`scripts.network.JCASNet`'s train-mode dict; :func:`make_loss` picks one by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch.nn.modules.loss import _Loss

from .config_check import LOSS_TYPES
from .losses import class_index_target

__all__ = ["LOSS_TYPES", "GCELoss", "LogitsLoss", "TLoss", "generalized_cross_entropy", "make_loss", "t_nll"]

_REDUCTIONS = ("mean", "sum", "none")


def _class_target(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None) -> tuple[torch.Tensor, ...]:
    """(BH[WD] class indices with ignored pixels set to 0, BH[WD] bool mask of the pixels that count)."""
    if logits.ndim < 3:
        raise ValueError(f"expected BNH[WD] logits, got {tuple(logits.shape)}")
    target = class_index_target(logits, target)
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    return torch.where(valid, target, torch.zeros_like(target)), valid


def _reduce(values: torch.Tensor, valid: torch.Tensor, reduction: str) -> torch.Tensor:
    """Mean over the valid entries (pixels or images; 0 when none), their sum, or the values with 0 where invalid."""
    values = torch.where(valid, values, torch.zeros_like(values))
    if reduction == "none":
        return values
    total = values.sum()
    return total if reduction == "sum" else total / valid.sum().clamp_min(1)


def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def generalized_cross_entropy(log_p_y: torch.Tensor, q: float) -> torch.Tensor:
    """L_q = (1 - p_y^q) / q, computed as -expm1(q log p_y) / q (-> -log p_y, the CE, as q -> 0)."""
    return -torch.expm1(q * log_p_y) / q


def t_nll(residual_sq: torch.Tensor, nu: torch.Tensor, dims: float | torch.Tensor) -> torch.Tensor:
    """-log Γ((ν+D)/2) + log Γ(ν/2) + (D/2) log(πν) + ((ν+D)/2) log(1 + ||δ||²/ν), Λ = I, per sample."""
    half = (nu + dims) / 2
    const = -torch.lgamma(half) + torch.lgamma(nu / 2) + dims / 2 * torch.log(math.pi * nu)
    return const + half * torch.log1p(residual_sq / nu)


class GCELoss(_Loss):
    """Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018): ``L_q = (1 - p_y^q) / q`` per pixel.

    ``p_y`` is the softmax probability of the labelled class; ``q = 1`` gives the MAE ``1 - p_y``, ``q -> 0`` the
    cross-entropy ``-log p_y``.

    Shapes:
        - input: BNH[WD] logits.
        - target: B1H[WD] (or BH[WD]) integer labels.

    Args:
        q: the exponent, in (0, 1].
        ignore_index: label value that contributes nothing (None: every value is a class).
        reduction: "mean" over the counted pixels, "sum", or "none" (BH[WD], 0 at ignored pixels).

    Raises:
        ValueError: q outside (0, 1], an unknown reduction, or shapes that do not match.
    """

    def __init__(self, q: float = 0.7, ignore_index: int | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction=_check_reduction(reduction))
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q <= 1.0:
            raise ValueError(f"q: expected a number in (0, 1], got {q!r}")
        self.q = float(q)
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target, valid = _class_target(input, target, self.ignore_index)
        log_p_y = F.log_softmax(input.float(), dim=1).gather(1, target.unsqueeze(1))[:, 0]
        return _reduce(generalized_cross_entropy(log_p_y, self.q), valid, self.reduction)


class TLoss(_Loss):
    """Robust T-Loss (Gonzalez-Jimenez et al., "Robust T-Loss for Medical Image Segmentation", MICCAI 2023).

    As in the paper, each image is one sample of a D-variate Student-t (Λ = I) of the residual ``δ = y - p``
    between the one-hot label and the softmax probabilities, D = classes × labelled pixels of the image:

    .. math::
        -\\log Γ(\\tfrac{ν+D}{2}) + \\log Γ(\\tfrac{ν}{2}) + \\tfrac{D}{2} \\log(πν)
            + \\tfrac{ν+D}{2} \\log(1 + \\|δ\\|^2 / ν)

    with the tolerance ``ν = softplus(η) + eps`` learned (``eta``, an ``nn.Parameter`` initialised so that
    ``ν = nu_init``). A pixel's gradient is ``δ (ν + D) / (ν + ||δ||²)``: the residual divided by the image's mean
    squared residual, so an image whose labels disagree with the prediction everywhere weighs less. The paper
    trains with Adam on the raw sum; here each image's NLL is divided by its D, so that its scale per pixel matches
    the cross-entropy's under the bundle's SGD (the minimiser and ν's optimum are unchanged).

    Shapes:
        - input: BNH[WD] logits (N = num_classes).
        - target: B1H[WD] (or BH[WD]) integer labels.
        - output: a scalar, or B (reduction "none"; 0 for an image without labelled pixels).

    Args:
        num_classes: N.
        nu_init: initial ν, > 0.
        eps: lower bound of ν, >= 0.
        ignore_index: label value that contributes nothing (None: every value is a class).
        reduction: "mean" over the images with labelled pixels, "sum", or "none".

    Raises:
        ValueError: num_classes < 2, nu_init <= eps, eps < 0, an unknown reduction, or shapes that do not match.
    """

    def __init__(
        self,
        num_classes: int,
        nu_init: float = 1.0,
        eps: float = 1e-8,
        ignore_index: int | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction=_check_reduction(reduction))
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes: expected an integer >= 2, got {num_classes!r}")
        if not eps >= 0:
            raise ValueError(f"eps: expected a number >= 0, got {eps!r}")
        if not nu_init > eps:
            raise ValueError(f"nu_init: expected a number > eps = {eps}, got {nu_init!r}")
        self.num_classes = num_classes
        self.eps = float(eps)
        self.ignore_index = ignore_index
        self.eta = torch.nn.Parameter(torch.tensor(math.log(math.expm1(nu_init - eps)), dtype=torch.float32))

    @property
    def nu(self) -> torch.Tensor:
        """ν = softplus(η) + eps."""
        return F.softplus(self.eta) + self.eps

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.ndim >= 2 and input.shape[1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} class channels (BNH[WD]), got {tuple(input.shape)}")
        target, valid = _class_target(input, target, self.ignore_index)
        prob = torch.softmax(input.float(), dim=1)
        one_hot = F.one_hot(target, self.num_classes).movedim(-1, 1).to(prob.dtype)
        residual_sq = torch.where(valid, (one_hot - prob).pow(2).sum(dim=1), torch.zeros_like(prob[:, 0]))
        dims = valid.flatten(1).sum(1).to(prob.dtype) * self.num_classes  # D of each image
        per_image = t_nll(residual_sq.flatten(1).sum(1), self.nu, dims) / dims.clamp_min(1)
        return _reduce(per_image, dims > 0, self.reduction)


class LogitsLoss(_Loss):
    """Applies a plain segmentation loss to ``pred["logits"]`` of :class:`scripts.network.JCASNet`'s train-mode dict
    (a tensor ``pred`` is used as it is), so that any loss trains the bundle's network.

    Args:
        loss: the loss, called as ``loss(logits, target)``.
        squeeze_target: pass BH[WD] targets (e.g. to ``torch.nn.CrossEntropyLoss``) instead of B1H[WD].
        ignore_index: for a loss without one (e.g. MONAI's ``DiceCELoss``): pixels with this label get target 0 and
            a certain class-0 prediction, so they carry no gradient and no foreground Dice (the CE's mean still
            counts them). None: the target is passed unchanged.
    """

    def __init__(self, loss: torch.nn.Module, squeeze_target: bool = False, ignore_index: int | None = None) -> None:
        super().__init__()
        if not callable(loss):
            raise ValueError(f"loss: expected a callable loss module, got {type(loss).__name__}")
        self.loss = loss
        self.squeeze_target = squeeze_target
        self.ignore_index = ignore_index

    def forward(self, pred: torch.Tensor | Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        logits = pred["logits"] if isinstance(pred, Mapping) else pred
        if self.ignore_index is not None:
            ignored = target == self.ignore_index
            target = torch.where(ignored, torch.zeros_like(target), target)
            certain = torch.full_like(logits, -1e4).index_fill_(1, torch.tensor([0], device=logits.device), 1e4)
            mask = ignored if ignored.ndim == logits.ndim else ignored.unsqueeze(1)
            logits = torch.where(mask, certain, logits)
        if self.squeeze_target and target.ndim == logits.ndim:
            target = target[:, 0]
        return self.loss(logits, target)


def make_loss(
    loss_type: str,
    num_classes: int,
    ignore_index: int | None = None,
    gce_q: float = 0.7,
    jcas: torch.nn.Module | None = None,
) -> torch.nn.Module:
    """The training loss named by the config key ``loss_type``.

    - ``jcas``: ``jcas`` as given (the bundle's :class:`scripts.losses.CALCLoss`).
    - ``ce``: ``torch.nn.CrossEntropyLoss`` on the logits.
    - ``dice_ce``: MONAI's ``DiceCELoss(softmax=True, to_onehot_y=True)`` on the logits.
    - ``gce``: :class:`GCELoss` with ``q = gce_q``.
    - ``tloss``: :class:`TLoss` (its ν is a parameter: give it to an optimiser).
    - ``adele``: cross-entropy, the loss that ADELE's label correction wraps (the config wraps it in
      :class:`scripts.early_learning.EarlyLearningCorrection`).

    Raises:
        ValueError: an unknown ``loss_type``, or ``jcas`` without the JCAS loss.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type: expected one of {LOSS_TYPES}, got {loss_type!r}")
    if loss_type == "jcas":
        if jcas is None:
            raise ValueError("loss_type 'jcas' needs the JCAS loss (jcas=CALCLoss(...))")
        return jcas
    if loss_type in ("ce", "adele"):
        ce = torch.nn.CrossEntropyLoss(ignore_index=-100 if ignore_index is None else ignore_index)
        return LogitsLoss(ce, squeeze_target=True)
    if loss_type == "dice_ce":
        return LogitsLoss(DiceCELoss(softmax=True, to_onehot_y=True), ignore_index=ignore_index)
    if loss_type == "gce":
        return LogitsLoss(GCELoss(q=gce_q, ignore_index=ignore_index))
    return LogitsLoss(TLoss(num_classes, ignore_index=ignore_index))
