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
from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Engine, Events
from scripts.divergence import DivergenceError
from scripts.handlers import CALCStageHandler, CALCStatsHandler, TransitionEstimateHandler, TransitionOptimizerHandler
from scripts.losses import CALCLoss
from scripts.transition import affinity_transition_from_class, transition_error
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def loss_engine(loss: CALCLoss, stages: list[bool] | None = None) -> Engine:
    """An engine whose iterations evaluate the loss on fixed random inputs, recording the stage of each epoch."""
    gen = torch.Generator().manual_seed(0)
    embedding = torch.relu(torch.randn(2, 4, 4, 4, generator=gen))
    pred = {
        "logits": torch.randn(2, 3, 8, 8, generator=gen),
        "embedding": embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-9),
    }
    target = torch.randint(0, 3, (2, 1, 8, 8), generator=gen)

    @torch.no_grad()
    def step(engine: Engine, batch: int) -> float:
        if stages is not None and engine.state.iteration % engine.state.epoch_length == 1:
            stages.append(loss.correction)
        return loss(pred, target).item()

    return Engine(step)


@pytest.mark.parametrize("warmup,expected", [(0, [True] * 4), (2, [False, False, True, True]), (9, [False] * 4)])
def test_stage_switch(warmup, expected):
    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]))
    stages: list[bool] = []
    engine = loss_engine(loss, stages)
    CALCStageHandler(loss, warmup).attach(engine)
    engine.run(range(3), max_epochs=4)
    assert stages == expected


def test_stage_follows_epoch_on_resume():
    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]))
    stages: list[bool] = []
    engine = loss_engine(loss, stages)
    CALCStageHandler(loss, 2).attach(engine)
    engine.run(range(3), max_epochs=1)
    engine.run(range(3), max_epochs=4)  # a finished engine given more epochs resumes at epoch 2
    assert stages == [False, False, True, True]


def test_correction_lr_scale_once_at_the_switch_and_across_a_resume():
    """Switch at epoch 3, s = 0.5, PolynomialLR(total 4, power 1) stepped after each epoch: epoch e starts at
    lr0 (1 - (e - 1) / 4), times s from epoch 3 on; a run resumed after epoch 1 or 3 from the loss's, optimizer's,
    scheduler's and engine's state (what the checkpoint holds) follows the same rates, scaled once."""

    def trainer(rates: list[float], state: tuple | None = None):
        loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]))
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
        scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=4, power=1.0)
        engine = loss_engine(loss)
        if state is not None:
            for part, saved in zip((loss, optimizer, scheduler, engine), state):
                part.load_state_dict(saved)
        CALCStageHandler(loss, 2, optimizer=optimizer, correction_lr_scale=0.5).attach(engine)
        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: rates.append(optimizer.param_groups[0]["lr"]))
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: scheduler.step())
        return engine, (loss, optimizer, scheduler)

    expected = [0.4, 0.3, 0.5 * 0.2, 0.5 * 0.1]
    rates: list[float] = []
    trainer(rates)[0].run(range(2), max_epochs=4)
    assert rates == pytest.approx(expected)
    for resume_at in (1, 3):
        rates = []
        engine, parts = trainer(rates)
        engine.run(range(2), max_epochs=resume_at)
        saved = [p.state_dict() for p in parts] + [{"epoch": resume_at, "epoch_length": 2, "max_epochs": 4}]
        trainer(rates, tuple(saved))[0].run(range(2), max_epochs=4)
        assert rates == pytest.approx(expected), resume_at


def test_bad_correction_lr_scale():
    with pytest.raises(ValueError, match="correction_lr_scale must be > 0"):
        CALCStageHandler(CALCLoss(3, lambda_consistency=0.0), 2, correction_lr_scale=0.0)
    with pytest.raises(ValueError, match="needs the network's optimizer"):
        CALCStageHandler(CALCLoss(3, lambda_consistency=0.0), 2, correction_lr_scale=0.5)


def test_bad_warmup():
    with pytest.raises(ValueError, match="warmup_epochs"):
        CALCStageHandler(CALCLoss(3, lambda_consistency=0.0), -1)
    with pytest.raises(ValueError, match="'auto' needs the early-learning monitor"):
        CALCStageHandler(CALCLoss(3, lambda_consistency=0.0), "auto")


class FixedMonitor:
    """An early-learning monitor whose foreground classes end their early learning at a given epoch."""

    def __init__(self, ended_at: int | None) -> None:
        self.ended_at = ended_at
        self.epoch = 0

    @property
    def foreground_ended(self) -> int | None:
        return self.ended_at if self.ended_at is not None and self.epoch >= self.ended_at else None


@pytest.mark.parametrize("ended_at,limit,expected_switch", [(3, 10, 4), (None, 5, 6), (None, None, -1)])
def test_auto_switch_follows_early_learning(ended_at, limit, expected_switch):
    """``warmup_epochs "auto"``: the correction starts the epoch after early learning ended, or after the limit;
    the switch epoch is the loss's, so a resumed run keeps it."""
    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]))
    monitor = FixedMonitor(ended_at)
    stages: list[bool] = []
    engine = loss_engine(loss, stages)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: setattr(monitor, "epoch", e.state.epoch))
    CALCStageHandler(loss, "auto", monitor, limit).attach(engine)
    engine.run(range(2), max_epochs=8)
    assert int(loss.switch_epoch) == expected_switch
    assert stages == [expected_switch != -1 and epoch >= expected_switch for epoch in range(1, 9)]


def test_plateau_stop_counts_from_the_correction_stage():
    """Patience 2 on a metric that stops improving at epoch 2: a JCAS run in warm-up until epoch 4 ends at epoch 6
    (two epochs without improvement after the switch); without a CALC loss, at epoch 4; None never stops."""
    from scripts.handlers import ValidationPlateauStop

    scores = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    for loss, patience, last_epoch in (
        (CALCLoss(3, torch.tensor([0.5, 0.3, 0.2])), 2, 6),
        (None, 2, 4),
        (None, None, 8),
    ):
        validator = Engine(lambda e, b: None)
        trainer = Engine(lambda e, b: None)
        trainer.add_event_handler(
            Events.EPOCH_COMPLETED,
            lambda e, v=validator: setattr(v.state, "metrics", {"val": scores[e.state.epoch - 1]}),
        )
        if loss is not None:
            CALCStageHandler(loss, 3).attach(trainer)
        ValidationPlateauStop(patience, validator, "val", loss).attach(trainer)
        trainer.run(range(2), max_epochs=8)
        assert trainer.state.epoch == last_epoch, (loss, patience)


@pytest.mark.parametrize("ended_at,limit,last_epoch", [(4, 10, 7), (None, 5, 8), (None, None, 12), (1, None, 4)])
def test_a_peer_plateau_counts_from_the_end_of_early_learning(ended_at, limit, last_epoch):
    """Without a CALC loss, patience 2 on a metric flat from epoch 1 counts from the epoch after early learning
    ended (ended at 4: the first counted score, at 5, is the best, and 6 and 7 do not improve on it), or after the
    limit; with neither, a plateau from epoch 1 does not end the run and the whole budget (12 epochs) runs."""
    from scripts.handlers import ValidationPlateauStop

    validator = Engine(lambda e, b: None)
    trainer = Engine(lambda e, b: None)
    monitor = FixedMonitor(ended_at)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: setattr(monitor, "epoch", e.state.epoch))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: setattr(validator.state, "metrics", {"val": 0.5}))
    ValidationPlateauStop(2, validator, "val", monitor=monitor, warmup_limit=limit).attach(trainer)
    trainer.run(range(2), max_epochs=12)
    assert trainer.state.epoch == last_epoch


def test_stats_handler_metrics_and_tensorboard(tmp_path):
    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]), correction=True)
    optimizer = torch.optim.SGD([{"params": [torch.zeros(1)]}, {"params": loss.parameters(), "lr": 0.5}], lr=0.1)
    engine = loss_engine(loss)
    CALCStatsHandler(loss, optimizer, log_dir=str(tmp_path), class_names=["a", "b", "c"]).attach(engine)
    engine.run(range(3), max_epochs=2)
    metrics = engine.state.metrics
    assert metrics["lr"] == 0.1 and metrics["lr_1"] == 0.5
    # the inputs are fixed, so the epoch mean of each term equals its last value
    for name, value in loss.last_terms.items():
        assert metrics[f"loss_{name}"] == pytest.approx(float(value), rel=1e-6)
    assert set(loss.last_terms) == {"class", "affinity", "volume", "consistency", "total"}
    events = EventAccumulator(str(tmp_path)).Reload()
    tags = events.Tags()
    t_class = loss.t_class().detach()
    assert events.Scalars("T_C/0->1")[-1].value == pytest.approx(float(t_class[0, 1]), rel=1e-6)
    assert [s.step for s in events.Scalars("T_A/1->1")] == [1, 2]
    assert len(tags["scalars"]) == 9 + 4
    assert {"T_C/matrix", "T_A/matrix"} <= set(tags["images"])


class FixedProbabilities(torch.nn.Module):
    """Predicts the same class probabilities at every pixel of its class map input (channel 0 holds the class)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0].long()].movedim(-1, 1)


def test_trusted_transition_handler_sets_the_estimate_once():
    # clean class i is predicted with probabilities table[i]: the estimate is table, row-normalised
    table = torch.tensor([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.0, 0.5, 0.5]])
    labels = torch.tensor([[[[0, 1], [2, 255]]], [[[0, 0], [1, 1]]]])  # 255: ignored
    batch = {"image": labels.clamp(max=2).float(), "label": labels}
    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]), ignore_index=255)
    network = FixedProbabilities(table).train()
    handler = TransitionEstimateHandler(loss, network, [batch], source="trusted")
    torch.testing.assert_close(handler.estimate(), table)
    assert network.training  # restored after the estimate

    seen = []
    engine = loss_engine(loss)
    CALCStageHandler(loss, 2).attach(engine)  # the switch at epoch 3
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(loss.t_class().detach().clone()))
    handler.attach(engine)  # attached after the recorder: it sets T_C at the start of epoch 3, before epoch 4
    engine.run(range(2), max_epochs=4)
    initial = CALCLoss(3, lambda_consistency=0.0).t_class().detach()
    for epoch, matrix in enumerate(seen, 1):
        expected = table if epoch == 4 else initial
        torch.testing.assert_close(matrix, expected, atol=2e-4, rtol=0, msg=f"epoch {epoch}")
    implied = affinity_transition_from_class(loss.t_class(), loss.class_prior)
    torch.testing.assert_close(loss.t_affinity().detach(), implied.detach(), atol=2e-4, rtol=0)


def test_trusted_transition_handler_needs_labelled_pixels():
    loss = CALCLoss(2, lambda_consistency=0.0, ignore_index=255)
    batch = {"image": torch.zeros(1, 1, 2, 2), "label": torch.full((1, 1, 2, 2), 255)}
    handler = TransitionEstimateHandler(loss, FixedProbabilities(torch.eye(2)), [batch], source="trusted")
    with pytest.raises(ValueError, match="no labelled pixel"):
        handler.estimate()


def test_anchor_estimate_recovers_the_rows_of_a_noisy_posterior():
    # a network fitted to noisy labels predicts T[i] at pixels of clean class i; class 2 is mostly labelled 1
    table = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.0, 0.6, 0.4]])
    classes = torch.tensor([0] * 60 + [1] * 25 + [2] * 15).reshape(1, 1, 10, 10)
    loss = CALCLoss(3, torch.tensor([0.6, 0.25, 0.15]))
    handler = TransitionEstimateHandler(loss, FixedProbabilities(table), [{"image": classes.float()}])
    torch.testing.assert_close(handler.estimate(), table)


def test_confusion_estimate_counts_the_given_labels_of_each_predicted_class():
    """Source "confusion": the network predicts the clean class (a noise-robust warm-up) and the given labels carry
    the noise, so T_C[i, j] is the share of label j among the pixels predicted i; ignored pixels do not count."""
    clean = torch.tensor([0] * 50 + [1] * 30 + [2] * 20).reshape(1, 1, 10, 10)
    given = clean.clone()
    given[0, 0].view(-1)[[0, 1, 2, 3, 4]] = 1  # 5 of 50 background pixels labelled 1
    given[0, 0].view(-1)[50:62] = 2  # 12 of 30 class-1 pixels labelled 2
    given[0, 0].view(-1)[80:85] = 255  # 5 of the class-2 pixels ignored
    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]), ignore_index=255)
    confident = torch.eye(3) * 0.9 + 0.1 / 3  # argmax = the clean class, whatever the sharpness
    handler = TransitionEstimateHandler(
        loss, FixedProbabilities(confident), [{"image": clean.float(), "label": given}], source="confusion"
    )
    expected = torch.tensor([[45 / 50, 5 / 50, 0.0], [0.0, 18 / 30, 12 / 30], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(handler.estimate(), expected)


def test_estimate_predicts_through_the_inferer():
    """With an inferer (the validation's sliding window in 3D) the estimate predicts each batch through it."""
    table = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    labels = torch.tensor([[[[0, 1], [1, 0]]]])
    calls = []

    def inferer(images: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
        calls.append(tuple(images.shape))
        return network(images)

    loss = CALCLoss(2, lambda_consistency=0.0)
    batch = {"image": labels.float(), "label": labels}
    handler = TransitionEstimateHandler(loss, FixedProbabilities(table), [batch], "trusted", inferer=inferer)
    torch.testing.assert_close(handler.estimate(), table)
    assert calls == [(1, 1, 2, 2)]


@pytest.mark.parametrize("source", ["anchor", "trusted", "confusion"])
def test_estimate_refuses_the_posteriors_of_a_diverged_network(source):
    """A network gone NaN in the warm-up stops the run at the switch with DivergenceError, not with an initial
    transition of NaN."""
    table = torch.tensor([[0.9, 0.1], [float("nan"), 0.8]])
    labels = torch.tensor([[[[0, 1], [1, 0]]]])
    loss = CALCLoss(2, lambda_consistency=0.0)
    batch = {"image": labels.float(), "label": labels}
    loss.switch_epoch.fill_(4)  # the correction stage starts at epoch 4
    handler = TransitionEstimateHandler(loss, FixedProbabilities(table), [batch], source)
    before = loss.t_class().detach().clone()
    with pytest.raises(DivergenceError) as info:
        handler.estimate()
    assert str(info.value) == (
        f"the network diverged: at the transition estimate ({source}, start of epoch 4) 2 of its 8 class posteriors "
        "are NaN or infinite; lower learning_rate and train again"
    )
    torch.testing.assert_close(loss.t_class().detach(), before)


def test_estimate_handler_bad_source():
    with pytest.raises(ValueError, match="'anchor', 'trusted' or 'confusion'"):
        TransitionEstimateHandler(CALCLoss(2, lambda_consistency=0.0), torch.nn.Identity(), [], source="oracle")


def test_transition_optimizer_steps_only_in_correction():
    from monai.engines import SupervisedTrainer
    from monai.networks.nets import UNet
    from scripts.network import JCASNet

    torch.manual_seed(0)
    network = JCASNet(UNet(2, 1, 8, (8, 16), (2,)), 8, num_classes=3, affinity_grid=4)
    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]))
    transition_optimizer = torch.optim.Adam(loss.parameters(), lr=0.05)
    image = torch.rand(2, 1, 16, 16)
    data = [{"image": image, "label": (image * 3).long().clamp(max=2)}] * 3
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=data,
        network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.01),
        loss_function=loss,
        decollate=False,
    )
    TransitionOptimizerHandler(loss, transition_optimizer).attach(trainer)
    start = loss.t_class().detach().clone()
    trainer.run()  # warm-up: T_C is not used, nothing moves
    torch.testing.assert_close(loss.t_class().detach(), start)
    loss.correction = True
    trainer.state.max_epochs = 2
    trainer.run()
    moved = (loss.t_class().detach() - start).abs().max()
    assert moved > 0.01  # three Adam steps at 0.05 on W
    assert all(p.grad is None for p in loss.parameters())  # cleared after each step
    assert transition_optimizer.state_dict()["state"][0]["step"] == 3


def test_transition_optimizer_under_amp_steps_through_the_grad_scaler():
    """With the trainer's ``GradScaler`` the transitions get the same step as without scaling (scaled by 2^10, then
    unscaled by ``scaler.step``), and a step with an infinite gradient is skipped, as for the network."""
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))

    def step(scale: float | None, poison: bool = False) -> tuple[torch.Tensor, float]:
        loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]), correction=True, lambda_affinity=0.0)
        optimizer = torch.optim.Adam(loss.parameters(), lr=0.05)
        engine = Engine(lambda e, b: None)
        engine.amp, engine.scaler = scale is not None, torch.amp.GradScaler("cpu", init_scale=scale or 1.0)
        value = loss({"logits": logits}, target)
        if scale is None:
            value.backward()
        else:
            engine.scaler.scale(value).backward()
        if poison:
            loss.t_class.weight.grad[0, 1] = float("inf")
        TransitionOptimizerHandler(loss, optimizer)(engine)
        if scale is not None:
            engine.scaler.update()
        return loss.t_class.weight.detach().clone(), engine.scaler.get_scale()

    plain, _ = step(None)
    scaled, _ = step(2.0**10)
    torch.testing.assert_close(scaled, plain)
    start = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2])).t_class.weight.detach()
    skipped, scale_after = step(2.0**10, poison=True)
    torch.testing.assert_close(skipped, start)  # not stepped
    assert scale_after == 2.0**9  # the scaler backed off


def test_transition_optimizer_must_own_the_transitions():
    loss = CALCLoss(3, lambda_consistency=0.0)
    with pytest.raises(ValueError, match="exactly the loss's parameters"):
        TransitionOptimizerHandler(loss, torch.optim.Adam([loss.t_class.weight], lr=0.1))


def test_stats_handler_reports_the_error_against_a_reference(tmp_path):
    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]), correction=True)
    reference = torch.tensor([[0.8, 0.1, 0.1], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]])
    engine = loss_engine(loss)
    out = tmp_path / "transitions.json"
    CALCStatsHandler(loss, log_dir=str(tmp_path), reference_transition=reference, transitions_file=str(out)).attach(
        engine
    )
    engine.run(range(2), max_epochs=1)
    t_class = loss.t_class().detach()
    expected = float((t_class - reference).abs().sum(dim=1).mean())
    assert engine.state.metrics["T_C_error"] == pytest.approx(expected, rel=1e-5)
    assert transition_error(t_class, reference) == pytest.approx(expected, rel=1e-5)
    record = json.loads(out.read_text())
    assert record["epoch"] == 1 and record["T_C_error"] == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(torch.tensor(record["T_C"]), t_class)
    with pytest.raises(ValueError, match="reference_transition must be"):
        CALCStatsHandler(loss, log_dir=str(tmp_path), reference_transition=torch.eye(2))


def test_stats_handler_writes_the_transition_heat_map(tmp_path):
    """At the end of training the learned T_C is written as a PNG heat map (class names on the axes)."""
    from PIL import Image

    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]))
    engine = loss_engine(loss)
    figure = tmp_path / "eval" / "T_C.png"
    CALCStatsHandler(loss, log_dir=str(tmp_path), class_names=["a", "b", "c"], figure_file=str(figure)).attach(engine)
    written: list[bool] = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: written.append(figure.exists()))
    engine.run(range(2), max_epochs=2)
    assert written == [False, False]  # written once, at the end
    with Image.open(figure) as png:
        assert png.size == (360, 340)  # (1.2 + 0.8 * 3) x (1.0 + 0.8 * 3) inches at 100 dpi
        assert len(set(png.convert("RGB").getdata())) > 20  # a drawn heat map, not a blank canvas
