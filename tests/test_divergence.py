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
"""Divergence stops training before it is saved (``scripts/divergence.py``): non-finite values, a loss term far
above its first value, a parameter norm far above its start, with the learning rates named."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from ignite.engine import Engine
from scripts.checkpoint import checkpoint_problem
from scripts.divergence import DivergenceError, StopOnDivergence, learning_rates, run_or_exit
from scripts.losses import CALCLoss

from tests.test_checkpoint import ROOT, bundle_args, tiny  # noqa: F401 (tiny: the fixture of the tiny dataset)


def nan_at(iterations: set[int], loss: CALCLoss, net: torch.nn.Linear) -> Engine:
    """An engine whose iterations evaluate the real CALC loss; logits are NaN at the given iterations."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=gen)
    embedding = torch.nn.functional.normalize(torch.rand(2, 4, 4, 4, generator=gen), dim=1)
    target = torch.randint(0, 3, (2, 1, 8, 8), generator=gen)

    def step(engine: Engine, batch: int) -> dict:
        pred = logits.clone()
        if engine.state.iteration in iterations:
            pred[0, 1, 2, 3] = float("nan")
        return {"loss": loss({"logits": pred, "embedding": embedding}, target)}

    engine = Engine(step)
    StopOnDivergence(loss, net).attach(engine)
    return engine


def test_stop_on_non_finite_loss_names_epoch_iteration_and_term():
    loss, net = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2])), torch.nn.Linear(2, 2)
    engine = nan_at({5}, loss, net)
    with pytest.raises(DivergenceError) as info:
        engine.run(range(3), max_epochs=3)
    message = str(info.value)
    assert message.startswith("training diverged at epoch 2, iteration 5 (2 of 3 in the epoch): ")
    assert "non-finite loss term class=nan, total=nan (loss terms: class=nan, affinity=" in message
    assert engine.state.iteration == 5
    engine = nan_at(set(), loss, net)
    engine.run(range(3), max_epochs=3)  # finite throughout: runs to the end
    assert engine.state.iteration == 9
    with torch.no_grad():
        net.weight[0, 1] = float("inf")  # as an optimiser step with a huge learning rate leaves it
    engine = nan_at(set(), loss, net)
    trainer = SimpleNamespace(run=lambda: engine.run(range(3)))  # as MONAI's trainer: run() without arguments
    with pytest.raises(SystemExit, match=r"^DivergenceError: .*epoch 1, iteration 1 .*parameters .*: network\.weight"):
        run_or_exit(trainer)


class Terms(torch.nn.Module):
    """A loss that reports the given terms at each iteration (1-based), as CALCLoss's ``last_terms``."""

    def __init__(self, per_iteration: list[dict[str, float]]) -> None:
        super().__init__()
        self.per_iteration = per_iteration
        self.last_terms: dict[str, torch.Tensor] = {}

    def step(self, engine: Engine, batch: int) -> dict:
        self.last_terms = {k: torch.tensor(v) for k, v in self.per_iteration[engine.state.iteration - 1].items()}
        return {"loss": self.last_terms["total"]}


def run_terms(per_iteration: list[dict[str, float]], **kwargs) -> Engine:
    loss = Terms(per_iteration)
    engine = Engine(loss.step)
    StopOnDivergence(loss, **kwargs).attach(engine)
    engine.run(range(len(per_iteration)), max_epochs=1)
    return engine


def test_a_finite_loss_far_above_its_first_value_stops_the_run():
    """loss_class 7e17, finite, used to run on to the stage switch; 1000 times the first value stops it."""
    sgd = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1e6)
    empty = torch.optim.Adam([{"params": []}], lr=0.01)  # the transition optimiser of a loss without transitions
    healthy = [{"class": 2.8, "total": 2.9}, {"class": 2.0, "total": 2.1}, {"class": 2700.0, "total": 2800.0}]
    run_terms(healthy)  # 2700 < 1000 x 2.8: no stop
    diverged = [*healthy, {"class": 7.3e17, "total": 7.3e17}]
    with pytest.raises(DivergenceError) as info:
        run_terms(diverged, optimizers={"learning_rate": sgd, "transition_lr": empty})
    assert str(info.value) == (
        "training diverged at epoch 1, iteration 4 (4 of 4 in the epoch): loss term class=7.3e+17 is more than 1000 "
        "times its first value of the run (2.8, floored at 1) (loss terms: class=7.3e+17, total=7.3e+17; learning "
        "rates: learning_rate=1e+06). No checkpoint of this epoch was written; lower learning_rate (or "
        "transition_lr, the lambda_* weights) and train again."
    )
    small = [{"class": 0.01, "total": 0.01}, {"class": 999.0, "total": 999.0}]  # the reference is floored at 1
    run_terms(small)
    with pytest.raises(DivergenceError, match="class=1001 is more than 1000 times its first value of the run"):
        run_terms([small[0], {"class": 1001.0, "total": 1001.0}])


def test_a_weighted_total_is_not_bounded_when_the_terms_are():
    """lambda_volume 1e6 makes CALCLoss's total -7e6 in a healthy run: only its unweighted likelihood terms count."""
    volume = [{"class": 2.8, "affinity": 0.7, "total": 2.9}, {"class": 2.5, "volume": -6.9, "total": -6.9e6}]
    assert run_terms(volume).state.iteration == 2
    only_total = [{"total": 0.5}, {"total": 2e3}]  # a loss reporting no term (ce, gce): its total is bounded
    with pytest.raises(DivergenceError, match="loss term total=2000 is more than 1000 times"):
        run_terms(only_total)


def test_a_parameter_norm_far_above_its_start_stops_the_run():
    """The network's parameter norm, measured at the first iteration of the run, may grow 100 times, not more."""
    net = torch.nn.Linear(4, 4)
    start = float(torch.cat([p.detach().flatten() for p in net.parameters()]).norm())

    def grow(factor: float, at: int) -> Engine:
        def step(engine: Engine, batch: int) -> dict:
            if engine.state.iteration == at:
                with torch.no_grad():
                    for p in net.parameters():
                        p.mul_(factor)
            return {"loss": torch.tensor(1.0)}

        engine = Engine(step)
        StopOnDivergence(torch.nn.Module(), net, {"learning_rate": torch.optim.SGD(net.parameters(), lr=3.0)}).attach(
            engine
        )
        return engine

    grow(90.0, at=2).run(range(3), max_epochs=1)  # 90 times: healthy by this rule
    with torch.no_grad():
        for p in net.parameters():
            p.div_(90.0)
    with pytest.raises(DivergenceError) as info:
        grow(1000.0, at=3).run(range(2), max_epochs=2)
    message = str(info.value)
    assert message.startswith("training diverged at epoch 2, iteration 3 (1 of 2 in the epoch): the network's ")
    assert (
        f"parameter norm {1000 * start:.4g} is more than 100 times its norm at the start of the run ({start:.4g})"
        in (message)
    )
    assert message.endswith(
        "(loss terms: total=1; learning rates: learning_rate=3). No checkpoint of this epoch was "
        "written; lower learning_rate (or transition_lr, the lambda_* weights) and train again."
    )


def test_learning_rates_and_bad_arguments():
    net = torch.nn.Linear(2, 2)
    groups = torch.optim.SGD([{"params": [net.weight], "lr": 0.1}, {"params": [net.bias], "lr": 0.02}], lr=0.1)
    assert learning_rates({"learning_rate": groups}) == "learning_rate[0]=0.1, learning_rate[1]=0.02"
    assert learning_rates({"transition_lr": torch.optim.Adam([{"params": []}], lr=0.01)}) == "unknown"
    for key in ("loss_growth", "norm_growth"):
        with pytest.raises(ValueError, match=f"^{key} must be > 1, got 1.0$"):
            StopOnDivergence(torch.nn.Module(), net, **{key: 1.0})


@pytest.mark.slow
def test_huge_learning_rate_stops_before_any_checkpoint(tiny, tmp_path):  # noqa: F811 (the imported fixture)
    """``--learning_rate 1e6`` on 4 images: the first step explodes the weights (finite), the run stops there with
    exit status 1, the reason last (epoch, iteration, terms, learning rate), and no checkpoint at all."""
    override = {**tiny, "ckpt_dir": str(tmp_path / "models"), "output_dir": str(tmp_path / "eval")}
    override.update(learning_rate=1e6, max_epochs=2)
    cmd = [sys.executable, "-m", "monai.bundle", *bundle_args(override)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert last.startswith("DivergenceError: training diverged at epoch 1, iteration 1 (1 of 2 in the epoch): "), last
    assert "the network's parameter norm" in last and "more than 100 times its norm at the start of the run" in last
    assert "(loss terms: class=" in last and "learning rates: learning_rate=1e+06, transition_lr=0.01)" in last
    assert "lower learning_rate" in last
    assert not list((tmp_path / "models").glob("*.pt"))  # no checkpoint of the diverged run, not even model.pt
    assert all(checkpoint_problem(path) is None for path in (tmp_path / "models").glob("*.pt"))
