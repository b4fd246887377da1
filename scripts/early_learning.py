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
"""Adaptive early-learning correction (ADELE; Liu, Liu, Zhu, Shen, Fernandez-Granda, CVPR 2022, arXiv 2110.03740).

A network trained on noisy masks fits their correct part first ("early learning") and memorises the wrong part
later, at a different time for each class. Per class, the training IoU between the prediction and the given label
is recorded every epoch and fitted with ``f(t) = a (1 - exp(-b t^c))``; once the fitted derivative has dropped by
the ratio ``r`` (0.9), memorisation of that class is taken to begin and its labels are corrected from then on: a
pixel's label becomes ``c`` where the prediction averaged over input scales gives ``c`` a probability above ``τ``
(0.8). A multi-scale consistency term regularises throughout. See ``docs/method.md`` ("Early-learning correction")
for how this bundle implements it and the choices it made where the paper leaves them open.

Pieces: :class:`MultiScaleInferer` (the trainer's inferer: the network on rescaled copies of the batch),
:class:`EarlyLearningMonitor` (a handler: records the IoU curves, fits them at each epoch end, and keeps them in the
checkpoint), :class:`EarlyLearningCorrection` (a loss wrapper: corrects the target for the classes the monitor has
detected and adds the consistency term) and the pure functions :func:`fit_iou_curve`, :func:`memorization_started`,
:func:`correct_labels`, :func:`scale_consistency`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from monai.inferers import Inferer
from scipy.optimize import OptimizeWarning, curve_fit
from torch.nn.modules.loss import _Loss

from .losses import class_index_target

__all__ = [
    "EarlyLearningCorrection",
    "EarlyLearningMonitor",
    "MultiScaleInferer",
    "class_probabilities",
    "correct_labels",
    "fit_iou_curve",
    "iou_curve",
    "iou_curve_derivative",
    "memorization_started",
    "scale_consistency",
]

_MIN_EPOCHS = 10  # epochs of the IoU curve before the first fit: the first ones are a plateau, and noisy


def iou_curve(t: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """``f(t) = a (1 - exp(-b t^c))``, the paper's model of a class's training IoU at epoch ``t``."""
    return a * (1.0 - np.exp(-b * np.power(t, c)))


def iou_curve_derivative(t: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray:
    """``f'(t) = a b c t^(c-1) exp(-b t^c)``."""
    t = np.asarray(t, dtype=np.float64)
    return a * b * c * np.power(t, c - 1.0) * np.exp(-b * np.power(t, c))


def fit_iou_curve(values: Sequence[float]) -> tuple[float, float, float] | None:
    """Least-squares fit of :func:`iou_curve` to the IoU of epochs 1, 2, ..., n; None when it does not converge.

    Args:
        values: the training IoU of one class at each epoch so far (n >= 3).

    Returns:
        ``(a, b, c)`` with ``a`` in (0, 1.5], ``b`` in (0, 100], ``c`` in (0, 10].
    """
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 1 or y.size < 3 or not np.isfinite(y).all():
        return None
    t = np.arange(1, y.size + 1, dtype=np.float64)
    start = (max(float(y.max()), 1e-3), 0.5, 1.0)
    bounds = ((1e-6, 1e-6, 1e-3), (1.5, 100.0, 10.0))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(iou_curve, t, y, p0=start, bounds=bounds, maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    return float(params[0]), float(params[1]), float(params[2])


def memorization_started(
    values: Sequence[float],
    ratio: float = 0.9,
    min_epochs: int = _MIN_EPOCHS,
    min_rise: float = 0.05,
    min_fit: float = 0.9,
) -> bool:
    """Whether the fitted IoU curve's derivative at the last epoch ``n`` has dropped by ``ratio`` from its peak.

    .. math::
        r = \\frac{\\max_{1 \\le s \\le n} f'(s) - f'(n)}{\\max_{1 \\le s \\le n} f'(s)} > \\text{ratio}

    For the usual fit (``c <= 1``) ``f'`` decreases and the peak is ``f'(1)``: this is the paper's
    ``|f'(1) - f'(n)| / |f'(1)|``; for a slow start (``c > 1``) it measures the drop after the steepest epoch rather
    than firing on a derivative that still grows. Two conditions guard against the curves of a network trained from
    scratch, which start on a plateau and are noisy (ours): the curve must have risen by ``min_rise`` above its
    lowest value (a flat or falling curve has no early learning to end), and the fit must explain it (coefficient
    of determination at least ``min_fit``; a curve the model does not describe says nothing about its slope).

    Args:
        values: the class's training IoU at epochs 1..n.
        ratio: the paper's threshold r, in (0, 1).
        min_epochs: no detection before this many epochs.
        min_rise: the rise of the curve above its minimum that counts as learning.
        min_fit: the smallest R² of the fit.
    """
    y = np.asarray(values, dtype=np.float64)
    if y.size < max(min_epochs, 3) or y[-1] - y.min() < min_rise:
        return False
    params = fit_iou_curve(y)
    if params is None:
        return False
    t = np.arange(1, y.size + 1, dtype=np.float64)
    spread = float(((y - y.mean()) ** 2).sum())
    if spread <= 0 or 1.0 - float(((y - iou_curve(t, *params)) ** 2).sum()) / spread < min_fit:
        return False
    slopes = iou_curve_derivative(t, *params)
    peak = float(slopes.max())
    return peak > 0 and (peak - float(slopes[-1])) / peak > ratio


def class_probabilities(pred: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """BCH[WD] class probabilities of a network output: a tensor of logits, or :class:`scripts.network.JCASNet`'s
    train dict, whose probabilities are those it predicts in ``eval()`` mode (``softmax(Q)``, averaged with
    ``softmax(P)`` when DAR is on)."""
    if not isinstance(pred, Mapping):
        return torch.softmax(pred.float(), dim=1)
    probs = torch.softmax(pred["logits"].float(), dim=1)
    if "rectified" in pred:
        probs = 0.5 * (probs + torch.softmax(pred["rectified"].float(), dim=1))
    return probs


def correct_labels(
    target: torch.Tensor, probs: torch.Tensor, active: torch.Tensor, threshold: float = 0.8, ignore_index: int = -100
) -> torch.Tensor:
    """The target with the pixels where an active class ``c`` has probability above ``threshold`` set to ``c``.

    Args:
        target: BH[WD] integer labels.
        probs: BCH[WD] class probabilities (the multi-scale mean).
        active: (C,) bool, the classes whose labels are corrected.
        threshold: τ; at 0.5 or more at most one class can exceed it.
        ignore_index: labels never changed.

    Returns:
        BH[WD] corrected labels (a new tensor).
    """
    confidence, best = (probs * active.to(probs).view(1, -1, *([1] * (probs.ndim - 2)))).max(dim=1)
    change = (confidence > threshold) & (target != ignore_index)
    return torch.where(change, best, target)


def scale_consistency(probs: Sequence[torch.Tensor], eps: float = 1e-8) -> torch.Tensor:
    """``mean_s KL(q ‖ p_s)``, ``q`` the (detached) mean of the per-scale probabilities ``p_s``, per pixel.

    Args:
        probs: S BCH[WD] probability maps at the same size.

    Returns:
        scalar mean over scales, images and pixels.
    """
    mean = torch.stack([p.detach() for p in probs]).mean(dim=0)
    log_mean = torch.log(mean.clamp_min(eps))
    kl = [(mean * (log_mean - torch.log(p.clamp_min(eps)))).sum(dim=1).mean() for p in probs]
    return torch.stack(kl).mean()


class MultiScaleInferer(Inferer):
    """The training inferer of early-learning correction: in ``train()`` mode the network also runs on rescaled
    copies of the batch.

    Returns the network's output on the batch itself, a dict, plus ``"scale_probs"``: the class probabilities
    (:func:`class_probabilities`) at every scale, resized back to the batch's size, in the order of ``scales``.
    Each rescaled size is rounded to a multiple of ``divisor`` (a UNet needs sizes its strides divide). In
    ``eval()`` mode it is ``network(inputs)``.

    Args:
        scales: input scales, 1.0 among them (the paper: 0.7, 1.0, 1.5).
        divisor: every rescaled spatial size is a multiple of it (``2 ** len(unet_strides)``).
    """

    def __init__(self, scales: Sequence[float] = (0.7, 1.0, 1.5), divisor: int = 16) -> None:
        super().__init__()
        if 1.0 not in [float(s) for s in scales] or any(s <= 0 for s in scales):
            raise ValueError(f"scales must be positive and include 1.0, got {list(scales)}")
        if divisor < 1:
            raise ValueError(f"divisor must be >= 1, got {divisor}")
        self.scales = [float(s) for s in scales]
        self.divisor = int(divisor)

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args, **kwargs):
        if not network.training:
            return network(inputs, *args, **kwargs)
        size = inputs.shape[2:]
        mode = "bilinear" if inputs.ndim == 4 else "trilinear"
        output: dict[str, torch.Tensor] | None = None
        probs = []
        for scale in self.scales:
            if scale == 1.0:
                out = network(inputs, *args, **kwargs)
                output = dict(out) if isinstance(out, Mapping) else {"logits": out}
                probs.append(class_probabilities(out))
                continue
            scaled = [max(self.divisor, round(n * scale / self.divisor) * self.divisor) for n in size]
            x = F.interpolate(inputs, size=scaled, mode=mode, align_corners=False)
            p = class_probabilities(network(x, *args, **kwargs))
            probs.append(F.interpolate(p, size=size, mode=mode, align_corners=False))
        output["scale_probs"] = probs
        return output


class EarlyLearningMonitor:
    """Records each class's training IoU every epoch and detects the end of its early learning (ADELE's rule).

    Attach it to the trainer. After every iteration it counts, per class, the intersection and union of the
    prediction (the argmax of :func:`class_probabilities` of ``engine.state.output["pred"]``; the batch-size-1 scale
    when a :class:`MultiScaleInferer` is used) and the *given* label; at every epoch end it stores the epoch's IoU and
    fits each class's curve (:func:`memorization_started`). :attr:`active` are the classes whose early learning has
    ended: :class:`EarlyLearningCorrection` corrects their labels, and ``warmup_epochs "auto"`` switches JCAS to its
    correction stage once every foreground class is among them (:attr:`foreground_ended`). Its state (the IoU curve and
    the detection epochs) goes in the checkpoint, so a resumed run detects and corrects as the interrupted one did.

    Two guards for networks trained from scratch (ours, not in the paper, which fine-tunes pretrained networks): a
    foreground class is only tested once its IoU has reached ``min_iou`` (a class the network has not learned yet has
    a flat curve at 0, whose fit says nothing; under heavy noise the IoU with the given labels stays low, about 0.09
    for a 3 % class under symmetric 50 % noise, so the bar is low), and the background, whose IoU is high from the
    first epoch (predicting background everywhere already overlaps most of it), once every foreground class is
    detected: before that, confident background predictions would erase the foreground the network has yet to learn.

    Args:
        num_classes: C.
        max_epochs: length of the stored IoU curve.
        ratio: r, the drop of the fitted derivative that marks the end of early learning (the paper: 0.9).
        min_epochs: epochs of the curve before the first fit.
        min_iou: the IoU a foreground class must have reached before it is tested.
        background: the background class index (None: every class is tested alike).
        ignore_index: label value not counted.
    """

    def __init__(
        self,
        num_classes: int,
        max_epochs: int,
        ratio: float = 0.9,
        min_epochs: int = _MIN_EPOCHS,
        min_iou: float = 0.02,
        background: int | None = 0,
        ignore_index: int | None = None,
    ) -> None:
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"ratio (early_learning_ratio) must lie in (0, 1), got {ratio}")
        if max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
        self.num_classes = num_classes
        self.ratio = ratio
        self.min_epochs = min_epochs
        self.min_iou = min_iou
        self.background = background
        self.ignore_index = -100 if ignore_index is None else ignore_index
        self.history = torch.full((max_epochs, num_classes), -1.0, dtype=torch.float64)  # -1: not seen
        self.detected_epoch = torch.full((num_classes,), -1, dtype=torch.int64)
        self.counts = torch.zeros(2, num_classes, dtype=torch.float64)
        self.logger = logging.getLogger(__name__)

    @property
    def active(self) -> torch.Tensor:
        """(C,) bool: the classes whose early learning has ended."""
        return self.detected_epoch >= 0

    @property
    def foreground_ended(self) -> int | None:
        """The epoch at whose end the last foreground class seen ended its early learning, or None."""
        foreground = [c for c in range(self.num_classes) if c != self.background and self.history[:, c].max() >= 0]
        if not foreground or not all(bool(self.active[c]) for c in foreground):
            return None
        return int(max(int(self.detected_epoch[c]) for c in foreground))

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.count)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    @torch.no_grad()
    def count(self, engine: Engine) -> None:
        """Adds one iteration's intersections and unions of prediction and given label."""
        pred, label = engine.state.output["pred"], engine.state.output["label"]
        if isinstance(pred, Mapping):
            pred = {k: v for k, v in pred.items() if k != "scale_probs"}
        prediction = class_probabilities(pred).argmax(dim=1).cpu()
        given = class_index_target(prediction.unsqueeze(1).float(), label.cpu())
        valid = given != self.ignore_index
        for c in range(self.num_classes):
            p, g = (prediction == c) & valid, (given == c) & valid
            self.counts[0, c] += (p & g).sum()
            self.counts[1, c] += (p | g).sum()

    def epoch_iou(self) -> torch.Tensor:
        """(C,) training IoU of the counts so far (-1 for a class absent from prediction and label); resets them."""
        counts = self.counts.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            counts = counts.to("cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
            torch.distributed.all_reduce(counts)
            counts = counts.cpu()
        self.counts.zero_()
        intersection, union = counts
        return torch.where(union > 0, intersection / union.clamp_min(1), torch.full_like(union, -1.0))

    def __call__(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        if epoch > self.history.shape[0]:
            return
        self.history[epoch - 1] = self.epoch_iou()
        started = []
        foreground = [c for c in range(self.num_classes) if c != self.background]
        for c in foreground:
            curve = self.history[:epoch, c].tolist()
            if bool(self.active[c]) or min(curve) < 0 or curve[-1] < self.min_iou:
                continue  # detected already, absent in some epoch (no curve to fit), or not (or no longer) learned
            if memorization_started(curve, self.ratio, self.min_epochs):
                started.append(c)
        seen = [c for c in foreground if self.history[:epoch, c].max() >= 0]
        if self.background is not None and not bool(self.active[self.background]):
            if seen and all(bool(self.active[c]) or c in started for c in seen):
                started.append(self.background)
        for c in started:
            self.detected_epoch[c] = epoch
        engine.state.metrics["early_learning_ended"] = int(self.active.sum())
        if started:
            self.logger.info(f"epoch {epoch}: early learning ended for classes {started}")

    def state_dict(self) -> dict[str, list]:
        return {"history": self.history.tolist(), "detected_epoch": self.detected_epoch.tolist()}

    def load_state_dict(self, state: Mapping[str, list]) -> None:
        history = torch.as_tensor(state["history"], dtype=torch.float64)
        if history.ndim != 2 or history.shape[1] != self.num_classes:
            raise ValueError(
                f"the checkpoint's early-learning curve has {tuple(history.shape)} (epochs, classes), this run has "
                f"{self.num_classes} classes"
            )
        rows = min(history.shape[0], self.history.shape[0])  # a resumed run may have another max_epochs
        self.history[:rows] = history[:rows]
        self.detected_epoch = torch.as_tensor(state["detected_epoch"], dtype=torch.int64)


class EarlyLearningCorrection(_Loss):
    """Wraps a segmentation loss with ADELE's label correction and multi-scale consistency term.

    .. math::
        L = L_{inner}(\\text{pred}, \\hat y) + λ_{scale} \\operatorname{mean}_s KL(q \\| p_s)

    with ``q`` the mean of the per-scale probabilities and ``ŷ`` the given label corrected (:func:`correct_labels`)
    for the classes whose early learning has ended (``monitor.active``, see :class:`EarlyLearningMonitor`).

    Shapes:
        - pred: a network output with ``"scale_probs"`` (see :class:`MultiScaleInferer`), e.g. JCASNet's train dict;
          without it (no multi-scale inferer) the correction uses the output's own probabilities and the
          consistency term is 0.
        - target: B1H[WD] or BH[WD] integer labels.

    Args:
        loss: the inner loss, called as ``loss(pred, corrected_target)`` with a B1H[WD] target.
        monitor: the trainer's :class:`EarlyLearningMonitor`, which says which classes to correct.
        threshold: τ, the confidence above which a label is corrected.
        lambda_consistency: weight of the multi-scale consistency term.
        ignore_index: label value never corrected (None: every value is a class).
    """

    def __init__(
        self,
        loss: torch.nn.Module,
        monitor: EarlyLearningMonitor,
        threshold: float = 0.8,
        lambda_consistency: float = 1.0,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold (correction_threshold) must lie in (0, 1), got {threshold}")
        if lambda_consistency < 0:
            raise ValueError(f"lambda_consistency (lambda_scale_consistency) must be >= 0, got {lambda_consistency}")
        self.loss = loss
        self.monitor = monitor
        self.threshold = float(threshold)
        self.lambda_consistency = float(lambda_consistency)
        self.ignore_index = -100 if ignore_index is None else ignore_index
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, pred: torch.Tensor | Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        logits = pred["logits"] if isinstance(pred, Mapping) else pred
        given = class_index_target(logits, target)
        scale_probs = pred.get("scale_probs") if isinstance(pred, Mapping) else None
        inner_pred = {k: v for k, v in pred.items() if k != "scale_probs"} if isinstance(pred, Mapping) else pred
        with torch.no_grad():
            mean = torch.stack([p.detach() for p in scale_probs]).mean(dim=0) if scale_probs else None
            if mean is None:
                mean = class_probabilities(inner_pred)
            active = self.monitor.active.to(mean.device)
            corrected = correct_labels(given, mean, active, self.threshold, self.ignore_index)
        total = self.loss(inner_pred, corrected.unsqueeze(1).to(target.dtype))
        terms = dict(getattr(self.loss, "last_terms", {}))
        terms.pop("total", None)
        if scale_probs and self.lambda_consistency > 0:
            consistency = scale_consistency(scale_probs)
            total = total + self.lambda_consistency * consistency
            terms["scale_consistency"] = consistency.detach()
        valid = given != self.ignore_index
        terms["corrected"] = ((corrected != given) & valid).sum() / valid.sum().clamp_min(1)
        terms["total"] = total.detach()
        self.last_terms = terms
        return total
