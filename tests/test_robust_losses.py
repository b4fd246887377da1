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
"""Tests of scripts/robust_losses.py: hand-computed values, limits, ignore_index, bad arguments, bundle runs."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Events
from monai.losses import DiceCELoss
from scripts.demo_data import make_demo_dataset
from scripts.robust_losses import GCELoss, LogitsLoss, TLoss, generalized_cross_entropy, make_loss, t_nll

from tests.test_bundle import TINY_NET, run, workflow

LOG3 = math.log(3.0)


def pixels(logits: list[list[float]], labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B=1, N, P, 1) logits and (1, 1, P, 1) labels of P pixels."""
    x = torch.tensor(logits, dtype=torch.float32).T[None, :, :, None]
    return x, torch.tensor(labels)[None, None, :, None]


def test_gce_hand_computed():
    # pixel 1: p = (0.5, 0.5), y = 0, q = 0.5: (1 - 0.5^0.5) / 0.5 = 0.585786; pixel 2: p_y = 0.75: 0.267949
    x, y = pixels([[0.0, 0.0], [LOG3, 0.0]], [0, 0])
    per_pixel = GCELoss(q=0.5, reduction="none")(x, y)
    assert per_pixel[0, :, 0].tolist() == pytest.approx([2 - math.sqrt(2), 2 * (1 - math.sqrt(0.75))], abs=1e-6)
    assert float(GCELoss(q=0.5)(x, y)) == pytest.approx((2 - math.sqrt(2) + 2 * (1 - math.sqrt(0.75))) / 2, abs=1e-6)
    assert float(GCELoss(q=1.0)(x[:, :, 1:], y[:, :, 1:])) == pytest.approx(0.25, abs=1e-6)  # q = 1: MAE 1 - p_y


def test_gce_tends_to_ce():
    torch.manual_seed(0)
    x, y = torch.randn(2, 4, 5, 6), torch.randint(0, 4, (2, 1, 5, 6))
    assert float(GCELoss(q=1e-4)(x, y)) == pytest.approx(float(F.cross_entropy(x, y[:, 0])), abs=1e-3)
    assert float(generalized_cross_entropy(torch.tensor(math.log(0.25)), 1e-6)) == pytest.approx(math.log(4), 1e-5)


def test_tloss_hand_computed():
    # one image of one pixel, p = (0.5, 0.5), y = 0: ||δ||² = 0.5, D = 2, ν = 1:
    # -lgamma(1.5) + lgamma(0.5) + log(π) + 1.5 log(1.5) = log 2 + log π + 1.5 log 1.5, divided by D = 2
    x, y = pixels([[0.0, 0.0]], [0])
    loss = TLoss(num_classes=2)
    assert float(loss.nu.detach()) == pytest.approx(1.0, abs=1e-6)
    expected = (math.log(2) + math.log(math.pi) + 1.5 * math.log(1.5)) / 2
    assert float(loss(x, y)) == pytest.approx(expected, abs=1e-5)
    # ν = 2, ||δ||² = 0 (a certain, correct prediction): -lgamma(2) + lgamma(1) + log(2π) = log 2π
    assert float(t_nll(torch.tensor(0.0), torch.tensor(2.0), 2)) == pytest.approx(math.log(2 * math.pi), abs=1e-6)


def test_tloss_pools_each_image():
    """One Student-t sample per image (the paper's D = the image's size): the residuals of an image's pixels are
    summed inside one log, not averaged over per-pixel logs."""
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 2, 2), torch.randint(0, 3, (2, 1, 2, 2))
    residual_sq = (F.one_hot(y[:, 0], 3).movedim(-1, 1) - torch.softmax(x, 1)).pow(2).sum(dim=(1, 2, 3))
    d, nu = 12.0, 1.0  # 3 classes x 4 pixels
    per_image = [
        (-math.lgamma((nu + d) / 2) + math.lgamma(nu / 2) + d / 2 * math.log(math.pi * nu))
        + (nu + d) / 2 * math.log1p(float(s) / nu)
        for s in residual_sq
    ]
    loss = TLoss(num_classes=3, reduction="none")
    torch.testing.assert_close(loss(x, y), torch.tensor(per_image) / d)
    assert float(TLoss(num_classes=3)(x, y)) == pytest.approx(sum(per_image) / d / 2, abs=1e-5)


def test_tloss_gradient_reaches_nu():
    torch.manual_seed(0)
    loss = TLoss(num_classes=3)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss(x, torch.randint(0, 3, (2, 1, 4, 4))).backward()
    assert loss.eta.grad is not None and float(loss.eta.grad.abs()) > 0
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert [name for name, _ in LogitsLoss(loss).named_parameters()] == ["loss.eta"]


@pytest.mark.parametrize("loss", [GCELoss(q=0.7, ignore_index=255), TLoss(num_classes=3, ignore_index=255)])
def test_ignore_index_honoured(loss):
    torch.manual_seed(0)
    x, y = torch.randn(1, 3, 2, 3, requires_grad=True), torch.randint(0, 3, (1, 1, 2, 3))
    noisy = y.clone()
    noisy[0, 0, 0] = 255  # first row ignored: the mean over the second row alone
    assert float(loss(x, noisy)) == pytest.approx(float(loss(x[:, :, 1:], y[:, :, 1:])), abs=1e-6)
    loss(x, noisy).backward()
    assert float(x.grad[:, :, 0].abs().sum()) == 0.0 and float(x.grad[:, :, 1].abs().sum()) > 0
    all_ignored = torch.full_like(y, 255)
    assert float(loss(x, all_ignored)) == 0.0


def test_logits_loss_ignore_for_dice_ce():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 2, 3, requires_grad=True)
    y = torch.randint(0, 3, (1, 1, 2, 3))
    y[0, 0, 0] = 255
    loss = make_loss("dice_ce", 3, ignore_index=255)
    assert isinstance(loss.loss, DiceCELoss)
    loss({"logits": x, "embedding": None}, y).backward()
    assert float(x.grad[:, :, 0].abs().sum()) == 0.0 and float(x.grad[:, :, 1].abs().sum()) > 0


def test_make_loss_ce_equals_torch_ce():
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 1, 4, 4))
    y[0, 0, 0, 0] = 255
    expected = F.cross_entropy(x, y[:, 0], ignore_index=255)
    assert float(make_loss("ce", 3, ignore_index=255)({"logits": x}, y)) == pytest.approx(float(expected), abs=1e-6)
    jcas = torch.nn.Identity()
    assert make_loss("jcas", 3, jcas=jcas) is jcas


@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: GCELoss(q=0.0), "q: expected"),
        (lambda: GCELoss(q=1.5), "q: expected"),
        (lambda: GCELoss(reduction="avg"), "reduction: expected"),
        (lambda: TLoss(num_classes=1), "num_classes: expected"),
        (lambda: TLoss(num_classes=3, nu_init=0.0), "nu_init: expected"),
        (lambda: TLoss(num_classes=3, eps=-1.0), "eps: expected"),
        (lambda: make_loss("mae", 3), "loss_type: expected"),
        (lambda: make_loss("jcas", 3), "needs the JCAS loss"),
        (lambda: GCELoss()(torch.zeros(1, 3, 4), torch.zeros(1, 2, 4)), "B1H[WD] or BH[WD] target"),
        (lambda: GCELoss()(torch.zeros(1, 3, 4), torch.zeros(1, 5)), "target of size"),
        (lambda: TLoss(num_classes=2)(torch.zeros(1, 3, 4), torch.zeros(1, 4)), "2 class channels"),
    ],
)
def test_bad_arguments_raise(build, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        build()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("robust")
    datalist = make_demo_dataset(root / "data", num_train=4, num_val=2, num_test=2, size=(64, 80))
    return {
        **TINY_NET,
        "datalist": datalist,
        "dataset_dir": str(root / "data"),
        "image_size": [80, 64],
        "use_dar": False,
        "lambda_affinity": 0.0,
        "lambda_consistency": 0.0,
    }


def test_tloss_nu_saved_and_restored_on_resume(demo, tmp_path):
    override = {
        **demo,
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "eval"),
        "loss_type": "tloss",
        "warmup_epochs": 2,
        "max_epochs": 2,
    }
    wf = workflow(["train.json"], "train", **override)
    loss = wf.parser.get_parsed_content("loss_def")
    optimizer = wf.parser.get_parsed_content("optimizer")
    assert any(p is loss.loss.eta for group in optimizer.param_groups for p in group["params"])
    run(wf)
    trained_nu = float(loss.loss.nu.detach())
    assert trained_nu != pytest.approx(1.0, abs=1e-6)  # ν was learned
    saved = torch.load(tmp_path / "models" / "checkpoint_epoch=2.pt", map_location="cpu", weights_only=False)
    assert float(saved["loss"]["loss.eta"]) == pytest.approx(float(loss.loss.eta.detach()), abs=1e-7)

    wf = workflow(["train.json"], "train", **{**override, "resume": True, "max_epochs": 3})
    resumed = wf.parser.get_parsed_content("loss_def")
    trainer = wf.parser.get_parsed_content("train#trainer")
    nu_at_start: list[float] = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: nu_at_start.append(float(resumed.loss.nu.detach())))
    run(wf)
    assert nu_at_start == [pytest.approx(trained_nu, abs=1e-6)]  # epochs 1-2 restored, ν with them
    assert (tmp_path / "models" / "checkpoint_epoch=3.pt").is_file()


@pytest.mark.parametrize("loss_type", ["ce", "dice_ce", "gce"])
def test_plain_losses_train(demo, tmp_path, loss_type):
    override = {
        **demo,
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "eval"),
        "loss_type": loss_type,
        "warmup_epochs": 2,
        "max_epochs": 2,
    }
    run(workflow(["train.json"], "train", **override))
    assert (tmp_path / "models" / "model.pt").is_file()
    curve = json.loads((tmp_path / "eval" / "learning_curve.json").read_text())
    assert curve[1]["train_loss"] < curve[0]["train_loss"]  # the loss trains the network: it falls
