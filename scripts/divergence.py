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
"""Divergence stops training before it is saved: a non-finite loss or parameter, a loss term far above its first
value, or the network's parameter norm far above its norm at the start of the run.

:class:`StopOnDivergence` checks after every optimiser step, so the check runs before the epoch's checkpoint and
validation (``EPOCH_COMPLETED``); :func:`run_or_exit` ends the process with the reason as its last line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from ignite.engine import Engine, Events

__all__ = [
    "BOUNDED_TERMS",
    "LOSS_GROWTH",
    "NORM_GROWTH",
    "DivergenceError",
    "StopOnDivergence",
    "learning_rates",
    "run_or_exit",
]

# A bounded loss term above LOSS_GROWTH * max(1, |its first value in the run|) is divergence. Healthy runs: the
# epoch-mean loss never exceeded 1.6 times its first-epoch value in 16 demo runs (JCAS, CE, ADELE; the correction
# stage adds terms), and a diverging one (learning_rate 1e6) reached 7e17.
LOSS_GROWTH = 1e3
# The network's parameter norm above NORM_GROWTH times its norm at the start of the run is divergence. Healthy runs:
# the shipped model, 40 epochs at learning_rate 0.025, has 1.01 times the norm of its initialisation (27.99 / 27.71);
# one step at learning_rate 1e6 multiplies it by more than 1e4.
NORM_GROWTH = 1e2
# Loss terms whose size no loss weight sets (likelihoods of the labels), bounded by LOSS_GROWTH; the total is bounded
# instead when a loss reports none of them. The total of CALCLoss is not: lambda_volume 1e6 legitimately makes it -7e6.
BOUNDED_TERMS = ("class", "affinity")


class DivergenceError(FloatingPointError):
    """Training diverged: a NaN or an infinity (loss term, parameter, posterior or checkpointed state), or a loss or
    parameter norm grown far past its value at the start of the run."""


def _names(names: Sequence[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def learning_rates(optimizers: Mapping[str, torch.optim.Optimizer]) -> str:
    """``"learning_rate=0.025, transition_lr=0.01"``: each optimiser's current learning rate under its config key
    (``key[i]`` for its i-th parameter group when it has several); groups without parameters are left out."""
    parts = []
    for key, optimizer in optimizers.items():
        groups = [g for g in optimizer.param_groups if g["params"]]
        parts += [f"{key}{'' if len(groups) == 1 else f'[{i}]'}={g['lr']:.4g}" for i, g in enumerate(groups)]
    return ", ".join(parts) or "unknown"


class StopOnDivergence:
    """Stops training at the first iteration whose loss or parameters diverge, before any checkpoint of it is saved.

    After every iteration (so after the optimiser step) it raises :class:`DivergenceError`, naming the epoch, the
    iteration, every loss term and each optimiser's learning rate, when:

    - a loss term (``loss.last_terms``, else the engine output's ``"loss"``) or a parameter of ``network`` or
      ``loss`` (``T_C``, ``T_A``) holds a NaN or an infinity;
    - a bounded loss term ``l`` (:data:`BOUNDED_TERMS`, else the total) exceeds its first value of the run ``l_1``
      by the factor ``g_L`` (``loss_growth``, :data:`LOSS_GROWTH` = 1000):

      .. math:: |l| > g_L \\max(1, |l_1|)

    - the L2 norm of all the network's parameters exceeds its norm at the first iteration of the run by the factor
      ``g_N`` (``norm_growth``, :data:`NORM_GROWTH` = 100):

      .. math:: \\lVert \\theta \\rVert_2 > g_N \\lVert \\theta_1 \\rVert_2

    Both references are taken from the run itself (a resumed run: from the restored state), and the margins are wide
    (see the constants: healthy runs stay below 1.6 and 1.01 times). ignite's ``TerminateOnNan`` would end the run
    quietly (exit status 0, and ``COMPLETED`` fires, so the final checkpoint is attempted) and a finite divergence
    (``loss_class`` 7e17, weights 2e19) not at all. The check precedes the epoch's checkpoint and validation
    (``EPOCH_COMPLETED``), so no checkpoint of a diverged epoch is written. Under DDP the gradients are averaged, so
    every process diverges at the same iteration.

    Args:
        loss: the trainer's loss; its ``last_terms`` (name -> tensor) and parameters are checked.
        network: the trained network, whose parameters are checked (None: only the loss).
        optimizers: config key of the learning rate -> optimiser, named in the message (e.g.
            ``{"learning_rate": optimizer, "transition_lr": transition_optimizer}``).
        loss_growth: :math:`g_L`; ``math.inf`` turns the loss bound off.
        norm_growth: :math:`g_N`; ``math.inf`` turns the norm bound off.
        bounded_terms: loss terms bounded by ``loss_growth``.
    """

    def __init__(
        self,
        loss: torch.nn.Module,
        network: torch.nn.Module | None = None,
        optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
        loss_growth: float = LOSS_GROWTH,
        norm_growth: float = NORM_GROWTH,
        bounded_terms: Sequence[str] = BOUNDED_TERMS,
    ) -> None:
        for name, value in (("loss_growth", loss_growth), ("norm_growth", norm_growth)):
            if not value > 1:
                raise ValueError(f"{name} must be > 1, got {value!r}")
        self.loss = loss
        self.network = [] if network is None else list(network.parameters())
        named = [] if network is None else [(f"network.{n}", p) for n, p in network.named_parameters()]
        self.parameters = named + [(f"loss.{n}", p) for n, p in loss.named_parameters()]
        self.optimizers = dict(optimizers or {})
        self.loss_growth, self.norm_growth = float(loss_growth), float(norm_growth)
        self.bounded_terms = tuple(bounded_terms)
        self.first_terms: dict[str, float] = {}
        self.first_norm: float | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_STARTED, self.record_norm)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def reset(self, engine: Engine | None = None) -> None:
        """Forget the references (each ``engine.run()`` takes its own)."""
        self.first_terms, self.first_norm = {}, None

    def network_norm(self) -> float:
        """``‖θ‖₂`` of the network's parameters, in float64 (inf when a parameter is not finite or too large)."""
        if not self.network:
            return 0.0
        return float(torch.linalg.vector_norm(torch.stack([p.detach().double().norm() for p in self.network])))

    def record_norm(self, engine: Engine) -> None:
        """The norm reference, at the first iteration: after a resume's checkpoint has been loaded."""
        if self.first_norm is None:
            self.first_norm = self.network_norm()

    def terms(self, engine: Engine) -> dict[str, float]:
        """The loss terms of this iteration (``loss.last_terms``), with the engine output's ``"loss"`` as ``total``."""
        terms = {name: float(value) for name, value in getattr(self.loss, "last_terms", {}).items()}
        output = engine.state.output
        if "total" not in terms and isinstance(output, Mapping) and "loss" in output:
            terms["total"] = float(output["loss"])
        return terms

    def problem(self, engine: Engine, terms: Mapping[str, float]) -> str | None:
        """What diverged at this iteration (None: nothing)."""
        bad_terms = [name for name, value in terms.items() if not math.isfinite(value)]
        if bad_terms:
            return "non-finite loss term " + ", ".join(f"{name}={terms[name]}" for name in bad_terms)
        finite = [p.detach().isfinite().all() for _, p in self.parameters]
        if finite and not bool(torch.stack(finite).all()):  # one synchronisation, the names only on failure
            bad = [name for (name, _), ok in zip(self.parameters, finite, strict=True) if not bool(ok)]
            return f"non-finite parameters after the optimiser step: {_names(bad)}"
        bounded = [name for name in self.bounded_terms if name in terms] or [n for n in ("total",) if n in terms]
        for name in bounded:
            first = self.first_terms.setdefault(name, terms[name])
            limit = self.loss_growth * max(1.0, abs(first))
            if abs(terms[name]) > limit:
                return (
                    f"loss term {name}={terms[name]:.4g} is more than {self.loss_growth:g} times its first value of "
                    f"the run ({first:.4g}, floored at 1)"
                )
        norm = self.network_norm()
        if self.first_norm is not None and self.first_norm > 0 and not norm <= self.norm_growth * self.first_norm:
            return (
                f"the network's parameter norm {norm:.4g} is more than {self.norm_growth:g} times its norm at the "
                f"start of the run ({self.first_norm:.4g})"
            )
        return None

    def __call__(self, engine: Engine) -> None:
        terms = self.terms(engine)
        what = self.problem(engine, terms)
        if what is None:
            return
        state = engine.state
        where = f"epoch {state.epoch}, iteration {state.iteration}"
        if state.epoch_length:
            where += f" ({(state.iteration - 1) % state.epoch_length + 1} of {state.epoch_length} in the epoch)"
        values = ", ".join(f"{name}={value:.4g}" for name, value in terms.items())
        rates = f"; learning rates: {learning_rates(self.optimizers)}" if self.optimizers else ""
        raise DivergenceError(
            f"training diverged at {where}: {what} (loss terms: {values}{rates}). No checkpoint of this epoch was "
            "written; lower learning_rate (or transition_lr, the lambda_* weights) and train again."
        )


def run_or_exit(engine: Engine) -> None:
    """Run ``engine``; when training diverges (:class:`DivergenceError`), end the process with the reason as the last
    line of its output and exit status 1, instead of a traceback of the config runner (the traceback is logged)."""
    try:
        engine.run()
    except DivergenceError as e:
        raise SystemExit(f"{type(e).__name__}: {e}") from None
