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
"""Class-Affinity Loss Correction (CALC), ``docs/method.md`` "Class-Affinity Loss Correction".

Pure functions hold the maths; :class:`CALCLoss` holds the learnable transitions ``T_C`` and ``T_A``, the weights
and the training stage (warm-up without correction, then correction).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch.nn.modules.loss import _Loss
from torch.utils.checkpoint import checkpoint

from .transition import NoiseTransition, affinity_transition_from_class, transition_weight

__all__ = [
    "CALCLoss",
    "affinity_bce",
    "affinity_consistency",
    "bounded_nll",
    "class_index_target",
    "class_prior",
    "forward_corrected_dice",
    "forward_corrected_nll",
    "transition_log_volume",
]

_CLAMP = 1e-10  # probabilities are clamped here before the log, as in the paper
_CHUNK_ELEMENTS = 2**22  # pair elements per chunk of the exact affinity loss when no chunk size is given


def class_index_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The BH[WD] int64 class-index target of BCH[WD] ``logits`` from a B1H[WD] or BH[WD] ``target``.

    Raises:
        ValueError: a target with more than one channel, or whose batch and spatial size differ from the logits'.
    """
    if target.ndim == logits.ndim:
        if target.shape[1] != 1:
            raise ValueError(f"expected a one-channel B1H[WD] or BH[WD] target, got {tuple(target.shape)}")
        target = target[:, 0]
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"target {tuple(target.shape)} does not match logits {tuple(logits.shape)}: expected a target of size "
            f"{tuple(logits.shape[2:])} per image"
        )
    return target.long()


def _noisy_probabilities(logits: torch.Tensor, t_class: torch.Tensor | None) -> torch.Tensor:
    """BCH[WD] ``softmax(logits) T_C`` in float32 (``softmax(logits)`` when ``t_class`` is None); call with autocast
    off, since autocast's einsum would return float16."""
    probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
    # contiguous: einsum may return a permuted view (nll_loss's backward needs a contiguous input)
    return probs if t_class is None else torch.einsum("bc...,cd->bd...", probs, t_class.to(probs)).contiguous()


def _noisy_log_probabilities(logits: torch.Tensor, t_class: torch.Tensor | None) -> torch.Tensor:
    """BCH[WD] ``log clamp(softmax(logits) T_C, 1e-10)`` in float32 (``log_softmax(logits)`` when ``t_class`` is
    None); call with autocast off."""
    if t_class is None:
        return torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
    return torch.log(_noisy_probabilities(logits, t_class).clamp_min(_CLAMP))


def forward_corrected_nll(
    logits: torch.Tensor, target: torch.Tensor, t_class: torch.Tensor | None = None, ignore_index: int = -100
) -> torch.Tensor:
    """``NLL(log clamp(softmax(logits) T_C, 1e-10), target)``; plain cross-entropy when ``t_class`` is None.

    Args:
        logits: BCH[WD] class logits.
        target: BH[WD] integer noisy labels.
        t_class: (C, C) row-stochastic class transition ``T_C``, or None for no correction.
        ignore_index: label value that contributes nothing.

    Returns:
        scalar mean over the non-ignored pixels (0 when every pixel is ignored).
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):  # float32: the clamp at 1e-10 is not 0
        log_probs = _noisy_log_probabilities(logits, t_class)
        # a sum over the labelled pixels divided by their count (at least 1): a fully ignored batch gives 0, not NaN
        total = F.nll_loss(log_probs.contiguous(), target, ignore_index=ignore_index, reduction="sum")
        return total / (target != ignore_index).sum().clamp_min(1)


def bounded_nll(
    logits: torch.Tensor, target: torch.Tensor, q: float, ignore_index: int = -100, t_class: torch.Tensor | None = None
) -> torch.Tensor:
    """The generalized cross-entropy ``(1 - p_y^q) / q`` (Zhang & Sabuncu, NeurIPS 2018), mean over labelled pixels;
    forward-corrected, ``p = softmax(logits) T_C``, when ``t_class`` is given.

    Bounded by ``1 / q``: a pixel whose label the network finds improbable (a flip, under random noise) weighs little.

    Args:
        logits: BCH[WD] class logits.
        target: BH[WD] integer labels.
        q: the exponent in (0, 1] (``q -> 0`` is the cross-entropy).
        ignore_index: label value that contributes nothing.
        t_class: (C, C) row-stochastic class transition ``T_C``, or None for no correction.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_probs = _noisy_log_probabilities(logits, t_class)
        valid = target != ignore_index
        log_p_y = log_probs.gather(1, torch.where(valid, target, 0).unsqueeze(1))[:, 0]
        loss = torch.where(valid, -torch.expm1(q * log_p_y) / q, torch.zeros_like(log_p_y))
        return loss.sum() / valid.sum().clamp_min(1)


def forward_corrected_dice(
    logits: torch.Tensor, target: torch.Tensor, t_class: torch.Tensor | None = None, ignore_index: int = -100
) -> torch.Tensor:
    """MONAI's soft Dice loss of the noisy-label probabilities ``softmax(logits) T_C`` against the noisy labels.

    The Dice counterpart of :func:`forward_corrected_nll`: the network's clean posterior, carried through ``T_C``,
    is compared with the labels the annotators drew. ``DiceLoss(include_background=True, to_onehot_y=True)`` as
    MONAI's ``DiceCELoss`` uses it (one Dice per image and class, averaged), with ``softmax(logits)`` when
    ``t_class`` is None.

    Args:
        logits: BCH[WD] class logits.
        target: BH[WD] integer noisy labels.
        t_class: (C, C) row-stochastic class transition ``T_C``, or None for no correction.
        ignore_index: label value whose pixels count neither in the prediction nor in the label.

    Returns:
        scalar mean over images and classes.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        dice = DiceLoss(include_background=True, to_onehot_y=True, ignore_index=ignore_index)
        return dice(_noisy_probabilities(logits, t_class), target.unsqueeze(1))


def _pair_bce_sum(
    f_rows: torch.Tensor,
    f: torch.Tensor,
    y_rows: torch.Tensor,
    y: torch.Tensor,
    valid_rows: torch.Tensor,
    valid: torch.Tensor,
    t_affinity: torch.Tensor,
) -> torch.Tensor:
    """Sum of corrected pair BCE over the pairs (rows × all); f_rows: B,R,D; f: B,N,D; y_* and valid_*: B,R / B,N."""
    with torch.autocast(device_type=f.device.type, enabled=False):  # float32 pairs: the clamp at 1e-10 is not 0
        dtype = torch.promote_types(f.dtype, torch.float32)
        f_rows, f, t_affinity = f_rows.to(dtype), f.to(dtype), t_affinity.to(dtype)
        affinity = torch.bmm(f_rows, f.transpose(1, 2))  # B, R, N
        p_same = t_affinity[0, 1] + affinity * (t_affinity[1, 1] - t_affinity[0, 1])
        same = y_rows.unsqueeze(2) == y.unsqueeze(1)
        prob = torch.where(same, p_same, 1 - p_same)
        pair_valid = valid_rows.unsqueeze(2) & valid.unsqueeze(1)
        return -(torch.log(prob.clamp_min(_CLAMP)) * pair_valid).sum()


def affinity_bce(
    embedding: torch.Tensor,
    target: torch.Tensor,
    t_affinity: torch.Tensor | None = None,
    ignore_index: int = -100,
    chunk_size: int | None = None,
    num_pairs: int | None = None,
) -> torch.Tensor:
    """Mean corrected BCE over the pixel pairs of each image, on the affinity grid.

    .. math::
        a_{ij} = f_i \\cdot f_j,\\quad p'_{ij} = (1 - a_{ij}) T_A[0, 1] + a_{ij} T_A[1, 1],\\quad
        L_A = \\operatorname{mean}_{ij} \\operatorname{BCE}(p'_{ij}, [\\tilde y_i = \\tilde y_j])

    Pairs touching an ``ignore_index`` pixel are left out. The exact form visits all N² pairs in chunks of
    ``chunk_size`` rows, each recomputed in the backward pass, so memory is O(chunk_size · N) rather than O(N²).

    Args:
        embedding: BDH[WD] normalised embedding (non-negative, unit norm), so ``a_ij ∈ [0, 1]``.
        target: BH[WD] integer noisy labels on the same grid.
        t_affinity: (2, 2) affinity transition ``T_A`` (0 = different, 1 = same), or None for no correction.
        ignore_index: label value whose pairs are left out.
        chunk_size: rows per chunk of the exact loss; None picks chunks of about 4M pairs.
        num_pairs: if given, an unbiased estimate of the exact mean from this many pairs per image instead: both
            pixels of a pair are drawn uniformly (with replacement) among the image's valid pixels, so no ignored
            pixel enters a pair, and each image's mean is weighted by its share of the valid pairs.

    Returns:
        scalar loss.
    """
    if embedding.shape[0] != target.shape[0] or embedding.shape[2:] != target.shape[1:]:
        raise ValueError(f"target BH[WD] {tuple(target.shape)} must match embedding grid {tuple(embedding.shape)}")
    with torch.autocast(device_type=embedding.device.type, enabled=False):  # float32 even under autocast
        f = embedding.to(torch.promote_types(embedding.dtype, torch.float32)).flatten(2).transpose(1, 2)  # B, N, D
        t_affinity = torch.eye(2).to(f) if t_affinity is None else t_affinity.to(f)
        y = target.flatten(1)  # B, N
        valid = y != ignore_index
        batch, n = y.shape
        if num_pairs is not None:
            # images with no valid pixel draw from all pixels, and are masked below
            weights = valid.float() + (~valid.any(dim=1, keepdim=True)).float()
            i, j = (torch.multinomial(weights, num_pairs, replacement=True) for _ in range(2))  # B, M
            gather = lambda x, idx: torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # noqa: E731
            affinity = (gather(f, i) * gather(f, j)).sum(-1)  # B, M
            p_same = t_affinity[0, 1] + affinity * (t_affinity[1, 1] - t_affinity[0, 1])
            prob = torch.where(torch.gather(y, 1, i) == torch.gather(y, 1, j), p_same, 1 - p_same)
            # each image's mean weighted by its share of the valid pairs, as in the exact mean (0 for no valid pixel)
            pairs_per_image = valid.sum(dim=1).to(f) ** 2
            image_weight = pairs_per_image / pairs_per_image.sum().clamp_min(1)
            return -(torch.log(prob.clamp_min(_CLAMP)).mean(dim=1) * image_weight).sum()
        rows = chunk_size or max(1, _CHUNK_ELEMENTS // (batch * n))
        total = f.new_zeros(())
        for start in range(0, n, rows):
            args = (f[:, start : start + rows], f, y[:, start : start + rows], y, valid[:, start : start + rows], valid)
            if rows < n and torch.is_grad_enabled():
                total = total + checkpoint(_pair_bce_sum, *args, t_affinity, use_reentrant=False)
            else:
                total = total + _pair_bce_sum(*args, t_affinity)
        num_valid = valid.sum(dim=1).to(f)
        return total / (num_valid**2).sum().clamp_min(1)


def affinity_consistency(t_class: torch.Tensor, t_affinity: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``MSE(T_A*(T_C, π), T_A)``: the affinity transition implied by ``T_C`` should match the learned ``T_A``."""
    return F.mse_loss(affinity_transition_from_class(t_class, prior), t_affinity)


def transition_log_volume(transition: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    """``log max(det T, floor)``, VolMin's volume term, bounded below.

    Minimising ``log |det T|`` alone drives ``T`` to singular (``-inf``, then NaN); with the floor the term stops
    pulling once ``det T`` reaches ``floor``, far below the determinant of any transition that noisy labels can
    identify (0.037 for symmetric 50 % noise on 4 classes, 0.10 for pair-flip 40 %).
    """
    return torch.log(torch.linalg.det(transition.float()).clamp_min(floor))


def class_prior(
    labels: Iterable[np.ndarray | torch.Tensor], num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Class frequencies ``π`` of a set of (noisy) label maps, ignoring ``ignore_index``.

    Args:
        labels: label maps of any shape holding 0..C-1 (and ``ignore_index``).
        num_classes: C.
        ignore_index: label value not counted.

    Returns:
        (C,) float tensor summing to 1.
    """
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for label in labels:
        values = torch.as_tensor(np.asarray(label)).flatten().long()
        if ignore_index is not None:
            values = values[values != ignore_index]
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"label values must lie in 0..{num_classes - 1}, got {values.unique().tolist()}")
        counts += torch.bincount(values, minlength=num_classes).double()
    if counts.sum() == 0:
        raise ValueError("no labelled pixel to compute the class prior from")
    return (counts / counts.sum()).float()


class CALCLoss(_Loss):
    """Joint class-affinity loss with noise correction (JCAS, Guo & Yuan, MICCAI 2022, arXiv 2206.07994).

    Warm-up stage (``correction=False``): ``L = L_C + λ_A L_A``, uncorrected. Correction stage:

    .. math::
        L = L_C(T_C) + λ_D L_D(T_C) + λ_A L_A(T_A) + λ_{vol} (\\log|\\det T_C| + \\log|\\det T_A|)
            + λ_{cons} \\|T_A^*(T_C, π) - T_A\\|^2

    with ``L_C`` the forward-corrected NLL of the rectified logits ``P`` plus that of the logits ``Q``, and ``L_D``
    the same for MONAI's soft Dice loss (:func:`forward_corrected_dice`; our addition, 0 in the paper). ``L_D``
    joins at the switch only: the warm-up's NLL, a proper scoring rule, leaves the network's posteriors calibrated
    to the noisy labels, which the anchor estimate of ``T_C`` at the switch reads (Dice sharpens them); and it
    trains the network only (``T_C`` detached), so ``T_C`` is learned by the likelihood terms alone. The
    transitions ``t_class`` (``T_C``) and ``t_affinity`` (``T_A``) are submodules: ``loss.parameters()`` go to their
    own optimiser (see :class:`scripts.handlers.TransitionOptimizerHandler`) and ``loss.state_dict()`` saves them
    with the stage.

    Shapes:
        - pred: dict from :class:`scripts.network.JCASNet` in train mode: ``"logits"`` BCH[WD] (Q),
          optional ``"rectified"`` BCH[WD] (P), ``"embedding"`` BDh[wd] normalised, on the affinity grid.
        - target: B1H[WD] (or BH[WD]) integer noisy labels at the logits' size.

    Args:
        num_classes: C.
        class_prior: (C,) class frequencies of the noisy training labels (see :func:`class_prior`); needed when
            ``lambda_consistency > 0``.
        lambda_affinity: weight of the affinity loss ``L_A``; 0 turns it (and the embedding's use) off.
        lambda_dice: weight of the forward-corrected Dice term ``L_D`` in the correction stage (on the network
            only, ``T_C`` detached); 0 (the paper's loss) leaves it out.
        lambda_volume: weight of the volume term.
        lambda_consistency: weight of the class-affinity consistency term.
        ignore_index: label value that contributes nothing (None: every value is a class).
        correction: start in the correction stage (else warm-up).
        transition_init: initial value of the transition weights (see :class:`NoiseTransition`), or a known or
            estimated (C, C) class transition to start ``T_C`` from; ``T_A`` then starts at the affinity transition
            it implies with ``class_prior`` (see :func:`scripts.transition.affinity_transition_from_class`).
        affinity_chunk_size: rows per chunk of the exact affinity loss (None: automatic).
        affinity_pairs: sampled pairs per image for an unbiased estimate of ``L_A`` (None: exact).
        warmup_gce_q: None, or the exponent of a bounded class loss in the warm-up (:func:`bounded_nll`) instead of
            the NLL (ours, not in the paper).
        warmup_dice: also the Dice term (``lambda_dice``, with ``T_C = I``) in the warm-up, as MONAI's ``DiceCELoss``
            trains from the first epoch (ours, not in the paper).
        correction_gce_q: None (the paper), or the exponent of a bounded class loss for the network in the
            correction stage: the network learns from the forward-corrected generalized cross-entropy (``T_C``
            detached) and ``T_C`` from the forward-corrected likelihood (the network detached), so the network
            stays as robust as in a bounded warm-up while ``T_C`` is still the likelihood's (ours, not in the paper).
    """

    def __init__(
        self,
        num_classes: int,
        class_prior: torch.Tensor | None = None,
        lambda_affinity: float = 1.0,
        lambda_volume: float = 1e-4,
        lambda_consistency: float = 0.01,
        ignore_index: int | None = None,
        correction: bool = False,
        transition_init: float | Sequence[Sequence[float]] | torch.Tensor = -4.0,
        affinity_chunk_size: int | None = None,
        affinity_pairs: int | None = None,
        lambda_dice: float = 0.0,
        warmup_gce_q: float | None = None,
        warmup_dice: bool = False,
        correction_gce_q: float | None = None,
    ) -> None:
        super().__init__()
        for name, q in (("warmup_gce_q", warmup_gce_q), ("correction_gce_q", correction_gce_q)):
            if q is not None and (isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q <= 1.0):
                raise ValueError(f"{name}: expected None or a number in (0, 1], got {q!r}")
        self.warmup_gce_q = warmup_gce_q
        self.correction_gce_q = correction_gce_q
        self.warmup_dice = bool(warmup_dice)
        self.weights = {
            "affinity": lambda_affinity,
            "volume": lambda_volume,
            "consistency": lambda_consistency,
            "dice": lambda_dice,
        }
        for name, value in self.weights.items():
            if value < 0:
                raise ValueError(f"lambda_{name} must be >= 0, got {value}")
        for name, value in (("affinity_chunk_size", affinity_chunk_size), ("affinity_pairs", affinity_pairs)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        if lambda_consistency > 0 and class_prior is None:
            raise ValueError("lambda_consistency > 0 needs class_prior (see scripts.losses.class_prior)")
        self.num_classes = num_classes
        self.ignore_index = -100 if ignore_index is None else ignore_index
        self.affinity_chunk_size = affinity_chunk_size
        self.affinity_pairs = affinity_pairs
        prior = torch.full((num_classes,), 1.0 / num_classes) if class_prior is None else torch.as_tensor(class_prior)
        if prior.shape != (num_classes,):
            raise ValueError(f"class_prior must have shape ({num_classes},), got {tuple(prior.shape)}")
        self.register_buffer("class_prior", prior.float() / prior.sum())
        known = torch.as_tensor(transition_init).ndim > 0  # a (C, C) class transition rather than a weight value
        self.t_class = NoiseTransition(num_classes, 0.0 if known else transition_init)
        self.t_affinity = NoiseTransition(2, 0.0 if known else transition_init)
        if known:  # T_C from it, T_A from the affinity transition it implies
            self.set_transitions(transition_init, key="transition_init")
        self.register_buffer("_correction", torch.tensor(bool(correction)))
        # the first epoch of the correction stage (-1: not reached yet), set by scripts.handlers.CALCStageHandler
        self.register_buffer("switch_epoch", torch.tensor(-1, dtype=torch.int64))
        self.last_terms: dict[str, torch.Tensor] = {}

    @property
    def correction(self) -> bool:
        """True in the correction stage, False in warm-up; saved in the state dict."""
        return bool(self._correction)

    @correction.setter
    def correction(self, value: bool) -> None:
        self._correction.fill_(bool(value))

    @torch.no_grad()
    def set_transitions(self, t_class: Sequence[Sequence[float]] | torch.Tensor, key: str = "T_C") -> None:
        """Set ``T_C`` to a known or estimated (C, C) class transition (see
        :func:`scripts.transition.transition_weight`; ``key`` names it in errors) and ``T_A`` to the affinity
        transition it implies with the class prior; both stay learnable."""
        weight = transition_weight(t_class, self.num_classes, key).to(self.t_class.weight)
        self.t_class.weight.copy_(weight)
        implied = affinity_transition_from_class(self.t_class(), self.class_prior)
        self.t_affinity.weight.copy_(transition_weight(implied, 2, "T_A").to(self.t_affinity.weight))

    def forward(self, pred: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Total loss (scalar); the detached terms are kept in ``self.last_terms`` for logging."""
        if not isinstance(pred, dict) or "logits" not in pred:
            raise TypeError(f"CALCLoss expects JCASNet's train-mode dict with 'logits', got {type(pred).__name__}")
        logits = pred["logits"]
        target = class_index_target(logits, target)
        correct = self.correction
        t_class = self.t_class() if correct else None
        t_affinity = self.t_affinity() if correct else None

        class_logits = [logits] + ([pred["rectified"]] if "rectified" in pred else [])
        if not correct and self.warmup_gce_q is not None:  # a bounded warm-up: the network does not fit every flip
            terms = {"class": sum(bounded_nll(x, target, self.warmup_gce_q, self.ignore_index) for x in class_logits)}
        elif correct and self.correction_gce_q is not None:  # bounded for the network, the likelihood for T_C
            q, t_fixed = self.correction_gce_q, t_class.detach()
            terms = {
                "class": sum(
                    bounded_nll(x, target, q, self.ignore_index, t_fixed)
                    + forward_corrected_nll(x.detach(), target, t_class, self.ignore_index)
                    for x in class_logits
                )
            }
        else:
            terms = {"class": sum(forward_corrected_nll(x, target, t_class, self.ignore_index) for x in class_logits)}
        if (correct or self.warmup_dice) and self.weights["dice"] > 0:
            # T_C detached: the Dice term trains the network only. Dice rewards sharp predictions, and T_C = I lets
            # the corrected ones be sharpest, so its gradient would pull T_C to the identity (measured: the wrist
            # row's shaft entry 0.64 at the switch, 0.22 at epoch 40, truth 0.60); T_C is learned by the likelihood
            t_fixed = t_class.detach() if correct else None
            terms["dice"] = sum(forward_corrected_dice(x, target, t_fixed, self.ignore_index) for x in class_logits)
        if self.weights["affinity"] > 0:
            embedding = pred["embedding"]
            grid_target = F.interpolate(target[:, None].float(), size=embedding.shape[2:], mode="nearest")[:, 0].long()
            terms["affinity"] = affinity_bce(
                embedding, grid_target, t_affinity, self.ignore_index, self.affinity_chunk_size, self.affinity_pairs
            )
        if correct:
            terms["volume"] = transition_log_volume(t_class)
            if self.weights["affinity"] > 0 or self.weights["consistency"] > 0:  # else T_A is unused: leave it be
                terms["volume"] = terms["volume"] + transition_log_volume(t_affinity)
            if self.weights["consistency"] > 0:
                terms["consistency"] = affinity_consistency(t_class, t_affinity, self.class_prior)
        total = sum(self.weights.get(name, 1.0) * value for name, value in terms.items())
        self.last_terms = {name: value.detach() for name, value in terms.items()}
        self.last_terms["total"] = total.detach()
        return total
