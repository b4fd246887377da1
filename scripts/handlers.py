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
"""Ignite handlers of JCAS training: the warm-up/correction stage switch and what the training logs."""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents
from monai.handlers import EarlyStopHandler, TensorBoardHandler
from torch.utils.tensorboard import SummaryWriter

from .divergence import DivergenceError
from .early_learning import EarlyLearningMonitor
from .losses import CALCLoss
from .transition import (
    anchor_transition,
    format_matrix,
    prediction_confusion,
    soft_confusion,
    temperature_scaled,
    transition_error,
    transition_from_confusion,
)

__all__ = [
    "CALCStageHandler",
    "CALCStatsHandler",
    "TransitionEstimateHandler",
    "TransitionOptimizerHandler",
    "ValidationPlateauStop",
]


def early_learning_over(monitor: EarlyLearningMonitor, limit: int | None, epoch: int) -> bool:
    """Whether early learning is over by the start of ``epoch``: every foreground class ended it at an earlier epoch
    (``monitor.foreground_ended``), or ``epoch`` is past ``limit`` (None: no limit). Where ``warmup_epochs "auto"``
    switches JCAS and where a peer's plateau stop starts counting."""
    ended = monitor.foreground_ended
    return (ended is not None and ended < epoch) or (limit is not None and epoch > limit)


class CALCStageHandler:
    """Runs :class:`scripts.losses.CALCLoss` in warm-up, then in correction from the switch epoch on.

    The switch comes after ``warmup_epochs`` epochs, or, with ``"auto"``, at the first epoch after every foreground
    class has ended its early learning (``monitor.foreground_ended``, ADELE's rule: the fitted curve of the class's
    training IoU has flattened, see :class:`scripts.early_learning.EarlyLearningMonitor`) and at the latest after
    ``warmup_limit`` epochs. The switch epoch is kept in the loss's state dict (``switch_epoch``) and the stage is set
    from it at every epoch start, so a run resumed from any checkpoint continues in the right stage.

    At the switch the learning rate of each group of ``optimizer`` is multiplied by ``correction_lr_scale``, once: the
    warm-up may learn at a higher rate than the correction stage (``lr <- s lr``; the scheduler's chainable decay goes
    on from the scaled value, and the optimizer's state dict keeps it across ``--resume``).

    Args:
        loss: the CALC loss of the trainer.
        warmup_epochs: epochs without noise correction (0: correct from the start), or ``"auto"``.
        monitor: the early-learning monitor (needed for ``"auto"``).
        warmup_limit: the longest warm-up of ``"auto"`` (None: no limit).
        optimizer: the network's optimizer, needed when ``correction_lr_scale`` is not 1.
        correction_lr_scale: s > 0, the factor of the learning rate at the switch.
    """

    def __init__(
        self,
        loss: CALCLoss,
        warmup_epochs: int | str,
        monitor: EarlyLearningMonitor | None = None,
        warmup_limit: int | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        correction_lr_scale: float = 1.0,
    ) -> None:
        if not correction_lr_scale > 0:
            raise ValueError(f"correction_lr_scale must be > 0, got {correction_lr_scale!r}")
        if correction_lr_scale != 1.0 and optimizer is None:
            raise ValueError("correction_lr_scale other than 1 needs the network's optimizer")
        if warmup_epochs == "auto":
            if monitor is None:
                raise ValueError("warmup_epochs 'auto' needs the early-learning monitor")
        elif isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer >= 0 or 'auto', got {warmup_epochs!r}")
        self.loss = loss
        self.warmup_epochs = warmup_epochs
        self.monitor = monitor
        self.warmup_limit = warmup_limit
        self.optimizer = optimizer
        self.correction_lr_scale = float(correction_lr_scale)
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def _switch_now(self, epoch: int) -> bool:
        if self.warmup_epochs != "auto":
            return epoch > self.warmup_epochs
        return early_learning_over(self.monitor, self.warmup_limit, epoch)

    def __call__(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        if int(self.loss.switch_epoch) < 0 and self._switch_now(epoch):
            self.loss.switch_epoch.fill_(epoch)
            if self.warmup_epochs == "auto":
                ended = self.monitor.foreground_ended
                why = f"early learning ended at epoch {ended}" if ended is not None else f"limit {self.warmup_limit}"
                self.logger.info(f"epoch {epoch}: warm-up over ({why})")
            scale = self.correction_lr_scale
            if scale != 1.0:
                for group in self.optimizer.param_groups:
                    group["lr"] *= scale
                self.logger.info(f"epoch {epoch}: learning rate x {scale:g} for the correction stage")
        switch = int(self.loss.switch_epoch)
        correction = 0 <= switch <= epoch
        if correction != self.loss.correction or epoch == 1:
            stage = "correction (T_C, T_A learned)" if correction else "warm-up (no noise correction)"
            self.logger.info(f"epoch {epoch}: CALC stage {stage}")
        self.loss.correction = correction


class ValidationPlateauStop(EarlyStopHandler):
    """MONAI's ``EarlyStopHandler`` on the trainer: training ends once the validation metric has not improved for
    ``patience`` validations, so ``max_epochs`` is a ceiling rather than a budget to guess.

    It runs on the trainer (after the ``ValidationHandler``), so every process of a multi-GPU run stops at the same
    epoch. With a CALC loss the count starts at the correction stage: a plateau of the warm-up does not end the run.
    Without one (a peer's loss), given the early-learning ``monitor``, the count starts once every foreground class
    has ended its early learning, or after ``warmup_limit`` epochs, the moment ``warmup_epochs "auto"`` switches
    JCAS: the plateau of a network that has not yet learned a class (all background at first) does not end the run
    either. Its counter and best score are in its state dict, for the checkpoint.

    Args:
        patience: validations without improvement before stopping; None: never stop early.
        validator: the validation engine whose ``metric_name`` is watched.
        metric_name: the key metric.
        loss: the CALC loss, to count from its correction stage only.
        val_interval: epochs between validations.
        min_delta: the smallest increase that counts as an improvement.
        monitor: without ``loss``, the :class:`scripts.early_learning.EarlyLearningMonitor` of the run, to count
            from the end of early learning (None, and no ``loss``: count from the first epoch).
        warmup_limit: with ``monitor``, the count starts after this epoch at the latest (None: no limit).
    """

    def __init__(
        self,
        patience: int | None,
        validator: Engine,
        metric_name: str = "val_mean_dice",
        loss: CALCLoss | None = None,
        val_interval: int = 1,
        min_delta: float = 0.0,
        monitor: EarlyLearningMonitor | None = None,
        warmup_limit: int | None = None,
    ) -> None:
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
            raise ValueError(f"early_stop_patience must be a positive integer or null, got {patience!r}")
        super().__init__(patience or 1, lambda engine: validator.state.metrics[metric_name], min_delta=min_delta)
        self.enabled = patience is not None
        self.validator = validator
        self.metric_name = metric_name
        self.loss = loss
        self.val_interval = val_interval
        self.monitor = monitor
        self.warmup_limit = warmup_limit
        self.logger = logging.getLogger(__name__)

    def counting(self, epoch: int) -> bool:
        """Whether the plateau counts at the end of ``epoch``: in the correction stage of a CALC loss; without one,
        once early learning has ended (at an earlier epoch) or ``epoch`` is past ``warmup_limit``; always without
        either."""
        if self.loss is not None:
            return bool(self.loss.correction)
        return self.monitor is None or early_learning_over(self.monitor, self.warmup_limit, epoch)

    def attach(self, engine: Engine) -> None:
        if self.enabled:
            self.set_trainer(engine)
            super().attach(engine)

    def __call__(self, engine: Engine) -> None:
        if engine.state.epoch % self.val_interval or self.metric_name not in self.validator.state.metrics:
            return
        if not self.counting(engine.state.epoch):
            self._handler.counter, self._handler.best_score = 0, None  # the patience counts from the switch
            return
        super().__call__(engine)
        if engine.should_terminate:
            self.logger.info(
                f"epoch {engine.state.epoch}: {self.metric_name} has not improved for {self.patience} "
                "validations: training ends"
            )

    def state_dict(self) -> dict[str, float | int]:
        handler = self._handler
        best = None if handler is None else handler.best_score
        return {"counter": 0 if handler is None else int(handler.counter), "best_score": -1.0 if best is None else best}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        if self._handler is not None:
            self._handler.counter = int(state["counter"])
            self._handler.best_score = None if state["best_score"] == -1.0 else float(state["best_score"])


class TransitionOptimizerHandler:
    """Steps the transitions ``T_C`` and ``T_A`` of :class:`scripts.losses.CALCLoss` with their own optimiser.

    The transitions are a handful of global parameters with tiny per-parameter gradients; under the network's
    optimiser and poly decay they barely move (measured: ``W`` moves 0.07-0.38 where it needs 3-5). This handler
    gives them an optimiser of their own (Adam by default in ``train.json``, at a constant ``transition_lr``): after
    each backward pass of the correction stage it steps them (through the trainer's ``GradScaler`` under AMP, which
    unscales the gradients and skips a step with a non-finite one; the trainer's own ``scaler.update()`` follows) and
    clears them. Add its optimiser to the checkpoint's ``save_dict`` so a resumed run continues with its state.

    Args:
        loss: the CALC loss of the trainer.
        optimizer: an optimiser over ``loss.parameters()`` and nothing else.
    """

    def __init__(self, loss: CALCLoss, optimizer: torch.optim.Optimizer) -> None:
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if owned != {id(p) for p in loss.parameters()}:
            raise ValueError("the transition optimizer must hold exactly the loss's parameters (T_C and T_A)")
        self.loss = loss
        self.optimizer = optimizer

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        params = [p for p in self.loss.parameters() if p.grad is not None]
        if self.loss.correction and params:
            scaler = getattr(engine, "scaler", None)
            if getattr(engine, "amp", False) and scaler is not None:
                scaler.step(self.optimizer)  # unscales, and skips a step with a non-finite gradient
            else:
                self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


class TransitionEstimateHandler:
    """Starts the correction stage from a class transition estimated with the warm-up network.

    At the start of the first correction epoch (the loss's ``switch_epoch``, set by :class:`CALCStageHandler`, which
    must be attached first) the network, trained on the noisy labels through the warm-up, predicts the images of
    ``data_loader``; ``T_C`` is set to the estimate and ``T_A`` to the
    affinity transition it implies (:meth:`scripts.losses.CALCLoss.set_transitions`). Both are then learned as
    usual. Sources (our addition, not part of the published method):

    - ``"anchor"``: the training images; the anchor-point estimate of :func:`scripts.transition.anchor_transition`
      from a random subsample of their pixels (forward correction, Patrini et al., CVPR 2017). Needs no clean label.
      A network that fits the noisy labels can absorb the noise itself, and then ``T = I`` fits the class loss as
      well as the true ``T`` does, so an end-to-end learned ``T`` started at the identity stays there; the estimate
      starts it where the noise is.
    - ``"trusted"``: images with trusted (clean) labels, such as a checked validation split; ``T_C[i, j]`` is the
      mean predicted probability of class ``j`` over their pixels of class ``i`` (gold loss correction, Hendrycks
      et al., NeurIPS 2018).
    - ``"confusion"``: the training images and their given labels; ``T_C[i, j]`` is the share of given label ``j``
      among the pixels the network assigns to class ``i`` (:func:`scripts.transition.prediction_confusion`): the
      warm-up network's predictions stand in for the clean labels. Needs no clean label; suits a warm-up that does
      not fit the flipped minority (a bounded loss), whose posteriors are too sharp for the anchor estimate.

    A run resumed after that epoch keeps the transitions of its checkpoint. Under ``torch.distributed`` the
    processes' estimates are averaged, so every process sets the same matrices.

    Args:
        loss: the CALC loss of the trainer.
        network: the trained network; in ``eval()`` mode it returns BCH[WD] class probabilities.
        data_loader: batches of dicts with ``"image"`` BIH[WD] (and, for ``"trusted"`` and ``"confusion"``,
            ``"label"`` B1H[WD]).
        source: ``"anchor"``, ``"trusted"`` or ``"confusion"``.
        device: where the network runs (default: the device of its parameters).
        pixels_per_image: pixels sampled per image for the anchor estimate.
        inferer: how the network predicts a batch, ``inferer(images, network)`` (e.g. the validation's
            ``SlidingWindowInferer``, for whole volumes larger than a patch); None calls the network directly.
        top_fraction: see :func:`scripts.transition.anchor_transition`.
        calibrate: ``"anchor"`` only: before the estimate, the sampled posteriors are temperature-scaled to fit the
            noisy labels of the same pixels (:func:`scripts.transition.temperature_scaled`), so that an over-confident
            network (a bounded warm-up) reads as calibrated; needs ``"label"`` in the batches.
    """

    def __init__(
        self,
        loss: CALCLoss,
        network: torch.nn.Module,
        data_loader: Iterable[dict[str, torch.Tensor]],
        source: str = "anchor",
        device: torch.device | str | None = None,
        pixels_per_image: int = 4096,
        top_fraction: float = 0.1,
        inferer: Callable[[torch.Tensor, torch.nn.Module], torch.Tensor] | None = None,
        calibrate: bool = False,
    ) -> None:
        if source not in ("anchor", "trusted", "confusion"):
            raise ValueError(f"transition estimate source must be 'anchor', 'trusted' or 'confusion', got {source!r}")
        self.loss = loss
        self.network = network
        self.data_loader = data_loader
        self.source = source
        self.device = device
        self.pixels_per_image = pixels_per_image
        self.top_fraction = top_fraction
        self.inferer = inferer
        self.calibrate = calibrate and source == "anchor"
        self.temperature: float | None = None
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    @torch.no_grad()
    def estimate(self) -> torch.Tensor:
        """The (C, C) class transition estimated from ``data_loader`` with the current network.

        Raises:
            DivergenceError: the network's posteriors hold a NaN or an infinity.
            ValueError: the data loader gave no image (or, for ``"trusted"``, no labelled pixel).
        """
        device = self.device or next(self.network.parameters()).device
        num_classes = self.loss.num_classes
        sums = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=device)
        samples, sample_labels = [], []
        generator = torch.Generator().manual_seed(0)
        training = self.network.training
        self.network.eval()
        try:
            for batch in self.data_loader:
                images = batch["image"].to(device)
                probs = (self.network(images) if self.inferer is None else self.inferer(images, self.network)).float()
                if not bool(torch.isfinite(probs).all()):
                    raise DivergenceError(
                        f"the network diverged: at the transition estimate ({self.source}, start of epoch "
                        f"{int(self.loss.switch_epoch)}) {int((~torch.isfinite(probs)).sum())} of its {probs.numel()} "
                        "class posteriors are NaN or infinite; lower learning_rate and train again"
                    )
                if self.source == "trusted":
                    sums += soft_confusion(probs, batch["label"].to(device), num_classes, self.loss.ignore_index)
                    continue
                if self.source == "confusion":
                    labels = batch["label"].to(device)
                    sums += prediction_confusion(probs, labels, num_classes, self.loss.ignore_index).to(sums)
                    continue
                labels = batch["label"].flatten(1).cpu() if self.calibrate else [None] * len(probs)
                for image_probs, image_labels in zip(probs.flatten(2).transpose(1, 2).cpu(), labels, strict=True):
                    keep = torch.randperm(image_probs.shape[0], generator=generator)[: self.pixels_per_image]
                    samples.append(image_probs[keep])
                    if image_labels is not None:
                        sample_labels.append(image_labels[keep])
        finally:
            self.network.train(training)
        if self.source in ("trusted", "confusion"):
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(sums)
            if sums.sum() == 0:
                raise ValueError(f"the {self.source} data loader gave no labelled pixel to estimate T_C from")
            return transition_from_confusion(sums)
        if not samples:
            raise ValueError("the data loader gave no image to estimate T_C from")
        posteriors = torch.cat(samples)
        if self.calibrate:  # a bounded warm-up's network is over-confident: fit its temperature to the noisy labels
            posteriors, self.temperature = temperature_scaled(
                posteriors, torch.cat(sample_labels), self.loss.ignore_index
            )
        estimate = anchor_transition(posteriors, self.loss.class_prior.cpu(), self.top_fraction).to(device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(estimate)
            estimate /= torch.distributed.get_world_size()
        return estimate

    def __call__(self, engine: Engine) -> None:
        if int(self.loss.switch_epoch) != engine.state.epoch:
            return
        t_class = self.estimate()
        self.loss.set_transitions(t_class)
        scaled = f", posteriors at temperature {self.temperature:.3f}" if self.temperature is not None else ""
        self.logger.info(f"epoch {engine.state.epoch}: T_C estimated ({self.source}{scaled}): {format_matrix(t_class)}")


class CALCStatsHandler(TensorBoardHandler):
    """Reports the CALC loss terms, the learning rates and the learned transition matrices every epoch.

    At each epoch end, the epoch means of the loss terms (``loss_class``, ``loss_affinity``, ``loss_volume``,
    ``loss_consistency``, ``loss_total``) and the learning rate of each optimizer group (``lr``, ``lr_1``, ...) go to
    ``engine.state.metrics``, where MONAI's ``StatsHandler`` and ``TensorBoardStatsHandler`` attached after this
    handler print and plot them. ``T_C`` and ``T_A`` go to TensorBoard as one scalar per entry (``T_C/i->j``) and as
    heat-map images, and to ``engine.state.transitions`` as ``{"T_C/i-j": value}`` (row ``i`` clean, column ``j``
    noisy; names MLflow accepts), which ``--tracking mlflow`` logs as metrics (:mod:`scripts.tracking`).

    Args:
        loss: the CALC loss of the trainer.
        optimizer: the trainer's optimizer, for the learning rates (None: not reported).
        summary_writer: a TensorBoard writer to share with other handlers; None creates one in ``log_dir``.
        log_dir: folder of the TensorBoard events when ``summary_writer`` is None.
        class_names: names of the classes on the T_C heat map's axes.
        reference_transition: the true (C, C) class transition of the training labels, when known (e.g.
            ``overall["transition"]`` of a ``scripts.make_noisy`` report); the mean row L1 error of the learned
            ``T_C`` against it is logged as ``T_C_error``.
        transitions_file: a JSON file rewritten every epoch with the epoch, ``T_C``, ``T_A`` (and ``T_C_error``).
        figure_file: a PNG written at the end of training: the heat map of the learned ``T_C`` (rows clean, columns
            noisy, ``class_names`` on the axes).
    """

    def __init__(
        self,
        loss: CALCLoss,
        optimizer: torch.optim.Optimizer | None = None,
        summary_writer: SummaryWriter | None = None,
        log_dir: str = "./runs",
        class_names: list[str] | None = None,
        reference_transition: Sequence[Sequence[float]] | torch.Tensor | None = None,
        transitions_file: str | None = None,
        figure_file: str | None = None,
    ) -> None:
        super().__init__(summary_writer=summary_writer, log_dir=log_dir)
        self.loss = loss
        self.optimizer = optimizer
        self.class_names = class_names
        self.reference = None if reference_transition is None else torch.as_tensor(reference_transition).double()
        size = (loss.num_classes, loss.num_classes)
        if self.reference is not None and self.reference.shape != size:
            raise ValueError(f"reference_transition must be {size}, got {tuple(self.reference.shape)}")
        self.transitions_file = transitions_file
        self.figure_file = figure_file
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        if self.figure_file:
            engine.add_event_handler(Events.COMPLETED, self.save_figure)

    def save_figure(self, engine: Engine) -> None:
        """Writes the heat map of the learned ``T_C`` to ``figure_file``."""
        with torch.no_grad():
            fig = transition_figure(self.loss.t_class().cpu(), "T_C (learned class transition)", self.class_names)
        os.makedirs(os.path.dirname(os.path.abspath(self.figure_file)), exist_ok=True)
        fig.savefig(self.figure_file, dpi=100)

    def reset(self, engine: Engine) -> None:
        self._sums.clear()
        self._count = 0

    def accumulate(self, engine: Engine) -> None:
        for name, value in self.loss.last_terms.items():
            self._sums[name] += float(value)
        self._count += 1

    def __call__(self, engine: Engine) -> None:
        metrics = {f"loss_{name}": total / max(self._count, 1) for name, total in self._sums.items()}
        if self.optimizer is not None:
            for i, group in enumerate(self.optimizer.param_groups):
                metrics["lr" if i == 0 else f"lr_{i}"] = group["lr"]
        engine.state.metrics.update(metrics)
        epoch = engine.state.epoch
        with torch.no_grad():
            matrices = {"T_C": self.loss.t_class().cpu(), "T_A": self.loss.t_affinity().cpu()}
        engine.state.transitions = {}
        for tag, matrix in matrices.items():
            for i, row in enumerate(matrix.tolist()):
                for j, value in enumerate(row):
                    self._writer.add_scalar(f"{tag}/{i}->{j}", value, epoch)
                    engine.state.transitions[f"{tag}/{i}-{j}"] = value
            names = self.class_names if tag == "T_C" else ["different", "same"]
            self._writer.add_figure(f"{tag}/matrix", transition_figure(matrix, tag, names), epoch)
        record = {"epoch": epoch, "T_C": matrices["T_C"].tolist(), "T_A": matrices["T_A"].tolist()}
        message = f"epoch {epoch}: T_C {format_matrix(matrices['T_C'])}, T_A {format_matrix(matrices['T_A'])}"
        if self.reference is not None:
            record["T_C_error"] = engine.state.metrics["T_C_error"] = transition_error(matrices["T_C"], self.reference)
            self._writer.add_scalar("T_C_error", record["T_C_error"], epoch)
            message += f", T_C error {record['T_C_error']:.3f} (mean row L1 to the reference)"
        self._writer.flush()
        self.logger.info(message)
        if self.transitions_file:
            os.makedirs(os.path.dirname(os.path.abspath(self.transitions_file)), exist_ok=True)
            with open(self.transitions_file, "w") as f:
                json.dump(record, f, indent=1)


def transition_figure(matrix: torch.Tensor, title: str, names: list[str] | None = None):
    """A matplotlib ``Figure`` (no pyplot state) of a (K, K) transition matrix with its values in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = matrix.shape[0]
    names = names or [str(i) for i in range(size)]
    fig = Figure(figsize=(1.2 + 0.8 * size, 1.0 + 0.8 * size))
    FigureCanvasAgg(fig)  # TensorBoard's add_figure draws through the canvas
    ax = fig.add_subplot()
    ax.imshow(matrix.numpy(), vmin=0, vmax=1, cmap="viridis")
    for i in range(size):
        for j in range(size):
            value = float(matrix[i, j])
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="black" if value > 0.5 else "white")
    ax.set_xticks(range(size), names, rotation=45, ha="right")
    ax.set_yticks(range(size), names)
    ax.set_xlabel("noisy")
    ax.set_ylabel("clean")
    ax.set_title(title)
    fig.tight_layout()
    return fig
