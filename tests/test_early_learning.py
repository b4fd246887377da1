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
"""Early-learning correction (``scripts/early_learning.py``): the fit and its detection rule, the corrected labels,
the multi-scale term, the monitor, and a resumed run that corrects the same classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from scripts.early_learning import (
    EarlyLearningCorrection,
    EarlyLearningMonitor,
    MultiScaleInferer,
    correct_labels,
    fit_iou_curve,
    iou_curve,
    iou_curve_derivative,
    memorization_started,
    scale_consistency,
)


def test_fit_recovers_the_parameters_of_an_exact_curve():
    t = np.arange(1, 21, dtype=float)
    a, b, c = fit_iou_curve(iou_curve(t, 0.8, 0.3, 0.9))
    assert (a, b, c) == pytest.approx((0.8, 0.3, 0.9), rel=1e-3)
    assert fit_iou_curve([0.5, 0.6]) is None  # three parameters need three points


def test_detection_fires_where_the_fitted_derivative_has_dropped_by_the_ratio():
    """f(t) = 0.8 (1 - exp(-0.2 t)): f'(t) / f'(1) = exp(-0.2 (t - 1)), which drops below 1 - 0.9 = 0.1 once
    t > 1 + ln(10) / 0.2 = 12.5. Fed epoch by epoch, the rule fires first at epoch 13."""
    values = iou_curve(np.arange(1, 30, dtype=float), 0.8, 0.2, 1.0)
    fired = [n for n in range(4, 30) if memorization_started(values[:n].tolist(), ratio=0.9)]
    assert fired[0] == 13 == math.floor(1 + math.log(10) / 0.2) + 1
    assert all(n in fired for n in range(13, 30))  # and stays fired
    assert not memorization_started(values[:12].tolist(), ratio=0.9)
    assert memorization_started(values[:8].tolist(), ratio=0.5, min_epochs=4)  # lower ratio, earlier: 1 + ln 2 / 0.2
    assert not memorization_started(values[:8].tolist(), ratio=0.5)  # not before the 10 epochs of the default


def test_no_detection_on_a_flat_falling_or_unexplained_curve():
    """A class on the all-background plateau (IoU 0.06 then 0), a curve that barely rises, and noise that the fitted
    curve does not explain are not taken for the end of early learning."""
    assert not memorization_started([0.056] + [0.0] * 20)
    assert not memorization_started([0.40 + 0.002 * t for t in range(20)])  # rises 0.038 < 0.05
    rng = np.random.default_rng(0)
    assert not memorization_started((0.3 + 0.1 * rng.standard_normal(20)).clip(0, 1).tolist())


def test_a_slow_start_is_measured_from_the_steepest_epoch():
    """c > 1: the derivative first grows; the drop is counted from its peak, not from epoch 1 (where it is small)."""
    t = np.arange(1, 41, dtype=float)
    values = iou_curve(t, 0.7, 0.01, 2.0)  # f' peaks near t = 7
    slopes = iou_curve_derivative(t, 0.7, 0.01, 2.0)
    first = next(n for n in range(4, 41) if memorization_started(values[:n].tolist()))
    assert slopes[first - 1] < 0.1 * slopes[:first].max() and slopes[first - 2] >= 0.1 * slopes[: first - 1].max()


def test_correction_touches_only_confident_pixels_of_active_classes():
    target = torch.tensor([[0, 1, 2, 255]])  # B, N
    probs = torch.tensor([[[0.9, 0.1, 0.05, 0.9], [0.05, 0.85, 0.05, 0.05], [0.05, 0.05, 0.9, 0.05]]])  # B, C, N
    active = torch.tensor([False, True, True])
    corrected = correct_labels(target, probs, active, threshold=0.8, ignore_index=255)
    # pixel 0: class 0 is confident but not active -> unchanged; 1: class 1 confident and active (already 1);
    # 2: class 2 confident -> 2; 3: ignored, never changed
    assert corrected.tolist() == [[0, 1, 2, 255]]
    target = torch.tensor([[2, 2, 2, 0]])
    corrected = correct_labels(target, probs[..., [1, 1, 0, 1]], active, 0.8, 255)
    assert corrected.tolist() == [[1, 1, 2, 1]]  # 0.85 > 0.8 for class 1 at pixels 0, 1, 3; pixel 2 not confident


def test_scale_consistency_is_the_mean_kl_to_the_mean():
    p1 = torch.tensor([[[0.8], [0.2]]])
    p2 = torch.tensor([[[0.4], [0.6]]])
    q = torch.tensor([0.6, 0.4])
    expected = 0.5 * sum(float((q * (q / p[0, :, 0]).log()).sum()) for p in (p1, p2))
    assert float(scale_consistency([p1, p2])) == pytest.approx(expected, rel=1e-5)
    assert float(scale_consistency([p1, p1])) == pytest.approx(0.0, abs=1e-7)


class Recorder(torch.nn.Module):
    """Returns logits of the input's size and records the sizes it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.sizes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.sizes.append(tuple(x.shape[2:]))
        return {"logits": torch.cat([x[:, :1], -x[:, :1]], dim=1) * self.scale}


def test_multiscale_inferer_rounds_to_the_divisor_and_resizes_back():
    net = Recorder().train()
    out = MultiScaleInferer((0.7, 1.0, 1.5), divisor=16)(torch.rand(2, 1, 80, 96), net)
    assert net.sizes == [(64, 64), (80, 96), (128, 144)]  # 56 -> 64, 67.2 -> 64; 120 -> 128, 144
    assert [tuple(p.shape) for p in out["scale_probs"]] == [(2, 2, 80, 96)] * 3
    assert set(out) == {"logits", "scale_probs"}
    net.eval()
    assert MultiScaleInferer()(torch.rand(1, 1, 32, 32), net)["logits"].shape == (1, 2, 32, 32)  # eval: one call
    with pytest.raises(ValueError, match="include 1.0"):
        MultiScaleInferer((0.5, 2.0))


def monitor_engine(monitor: EarlyLearningMonitor, ious: list[float]) -> Engine:
    """One iteration per epoch whose prediction overlaps the class-1 label with the given IoU (class 0 the rest)."""

    def step(engine: Engine, batch: int) -> dict:
        iou = ious[engine.state.epoch - 1]
        label = torch.zeros(1, 1, 1, 100, dtype=torch.long)
        label[..., :50] = 1
        pred = torch.zeros(1, 2, 1, 100)
        pred[:, 0] = 1.0
        pred[:, 1, :, : round(50 * iou)] = 2.0  # intersection 50 iou, union 50: IoU = iou
        return {"pred": {"logits": pred}, "label": label}

    engine = Engine(step)
    monitor.attach(engine)
    return engine


def test_monitor_detects_and_its_state_survives_a_resume():
    """The class-1 IoU follows 0.8 (1 - exp(-0.3 t)): detected at the epoch the rule gives; the background then
    (every foreground class detected). A monitor loaded from the first's state dict holds the same curve and
    detections, so a resumed run corrects the same classes from the same epochs."""
    ious = iou_curve(np.arange(1, 31, dtype=float), 0.8, 0.3, 1.0).tolist()
    monitor = EarlyLearningMonitor(num_classes=2, max_epochs=30, ratio=0.9)
    monitor_engine(monitor, ious).run(range(1), max_epochs=20)
    expected = next(n for n in range(4, 21) if memorization_started(monitor.history[:n, 1].tolist()))
    assert monitor.detected_epoch.tolist() == [expected, expected] and monitor.foreground_ended == expected
    restored = EarlyLearningMonitor(num_classes=2, max_epochs=40)  # a longer resumed run keeps the curve
    restored.load_state_dict(monitor.state_dict())
    torch.testing.assert_close(restored.history[:30], monitor.history)
    assert restored.active.tolist() == [True, True] and restored.foreground_ended == expected
    with pytest.raises(ValueError, match="this run has 3 classes"):
        EarlyLearningMonitor(num_classes=3, max_epochs=30).load_state_dict(monitor.state_dict())


def test_correction_wrapper_corrects_the_target_its_inner_loss_sees():
    seen = []

    def inner(pred, target):
        seen.append(target.clone())
        return pred["logits"].sum() * 0.0

    monitor = EarlyLearningMonitor(num_classes=2, max_epochs=5)
    loss = EarlyLearningCorrection(inner, monitor, threshold=0.8)
    logits = torch.tensor([[[[3.0, -3.0]], [[-3.0, 3.0]]]])  # pixel 0: class 0 (p 0.998), pixel 1: class 1
    target = torch.tensor([[[[1, 0]]]])  # both wrong
    loss({"logits": logits}, target)
    assert seen[-1].tolist() == target.tolist()  # nothing active: unchanged
    monitor.detected_epoch[1] = 3
    loss({"logits": logits}, target)
    assert seen[-1].tolist() == [[[[1, 1]]]]  # class 1 active: its confident pixel corrected
    assert float(loss.last_terms["corrected"]) == pytest.approx(0.5)
