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

import glob
import logging
import os
from collections import defaultdict
from collections.abc import Iterable

import torch
from ignite.engine import Engine, Events
from monai.handlers import TensorBoardHandler
from torch.utils.tensorboard import SummaryWriter

from .losses import CALCLoss
from .transition import soft_confusion, transition_from_confusion

__all__ = ["CALCStageHandler", "CALCStatsHandler", "TrustedTransitionHandler", "latest_checkpoint"]


def latest_checkpoint(ckpt_dir: str, pattern: str = "checkpoint_epoch=*.pt") -> str:
    """Path of the newest checkpoint ``CheckpointSaver`` wrote in ``ckpt_dir``, to resume training from.

    Raises:
        FileNotFoundError: when ``ckpt_dir`` holds no file matching ``pattern``.
    """
    found = glob.glob(os.path.join(ckpt_dir, pattern))
    if not found:
        raise FileNotFoundError(f"no checkpoint '{pattern}' in '{ckpt_dir}' to resume from; train without resume first")
    return max(found, key=os.path.getmtime)


class CALCStageHandler:
    """Runs :class:`scripts.losses.CALCLoss` in warm-up for ``warmup_epochs`` epochs, then in correction.

    The stage is set from the epoch number at every epoch start, so a run resumed from any checkpoint (the loss's
    state dict also records the stage) continues in the right stage.

    Args:
        loss: the CALC loss of the trainer.
        warmup_epochs: epochs without noise correction (0: correct from the start).
    """

    def __init__(self, loss: CALCLoss, warmup_epochs: int) -> None:
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        self.loss = loss
        self.warmup_epochs = warmup_epochs
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        correction = engine.state.epoch > self.warmup_epochs
        if correction != self.loss.correction or engine.state.epoch == 1:
            stage = "correction (T_C, T_A learned)" if correction else "warm-up (no noise correction)"
            self.logger.info(f"epoch {engine.state.epoch}: CALC stage {stage}")
        self.loss.correction = correction


class TrustedTransitionHandler:
    """Starts the correction stage from a class transition estimated on images with trusted (clean) labels.

    At the start of the first correction epoch (``warmup_epochs + 1``), the network, trained on the noisy labels
    through the warm-up, predicts the trusted images; ``T_C[i, j]`` is set to the mean predicted probability of
    class ``j`` over the trusted pixels of class ``i`` (gold loss correction, Hendrycks et al., NeurIPS 2018), and
    ``T_A`` to the affinity transition it implies (:meth:`scripts.losses.CALCLoss.set_transitions`). Both are then
    learned as usual. A run resumed after that epoch keeps the transitions of its checkpoint. Under
    ``torch.distributed`` the counts are summed over the processes, so every process sets the same matrices.

    This is our addition, not part of the published method: it needs a labelled split whose labels are clean,
    such as the demo's validation split.

    Args:
        loss: the CALC loss of the trainer.
        network: the trained network; in ``eval()`` mode it returns BCH[WD] class probabilities.
        data_loader: batches of dicts with ``"image"`` BIH[WD] and trusted ``"label"`` B1H[WD] at the output size.
        warmup_epochs: epochs of the warm-up stage (see :class:`CALCStageHandler`).
        device: where the network runs (default: the device of its parameters).
    """

    def __init__(
        self,
        loss: CALCLoss,
        network: torch.nn.Module,
        data_loader: Iterable[dict[str, torch.Tensor]],
        warmup_epochs: int,
        device: torch.device | str | None = None,
    ) -> None:
        self.loss = loss
        self.network = network
        self.data_loader = data_loader
        self.warmup_epochs = warmup_epochs
        self.device = device
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED(once=self.warmup_epochs + 1), self)

    @torch.no_grad()
    def estimate(self) -> torch.Tensor:
        """The (C, C) class transition estimated from the trusted images with the current network."""
        device = self.device or next(self.network.parameters()).device
        num_classes = self.loss.num_classes
        sums = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=device)
        training = self.network.training
        self.network.eval()
        try:
            for batch in self.data_loader:
                probs = self.network(batch["image"].to(device))
                sums += soft_confusion(probs, batch["label"].to(device), num_classes, self.loss.ignore_index)
        finally:
            self.network.train(training)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        if sums.sum() == 0:
            raise ValueError("the trusted data loader gave no labelled pixel to estimate T_C from")
        return transition_from_confusion(sums)

    def __call__(self, engine: Engine) -> None:
        t_class = self.estimate()
        self.loss.set_transitions(t_class)
        rows = "; ".join(", ".join(f"{v:.3f}" for v in row) for row in t_class.tolist())
        self.logger.info(f"epoch {engine.state.epoch}: T_C estimated on the trusted data: [{rows}]")


class CALCStatsHandler(TensorBoardHandler):
    """Reports the CALC loss terms, the learning rates and the learned transition matrices every epoch.

    At each epoch end, the epoch means of the loss terms (``loss_class``, ``loss_affinity``, ``loss_volume``,
    ``loss_consistency``, ``loss_total``) and the learning rate of each optimizer group (``lr``, ``lr_1``, ...) go to
    ``engine.state.metrics``, where MONAI's ``StatsHandler`` and ``TensorBoardStatsHandler`` attached after this
    handler print and plot them. ``T_C`` and ``T_A`` go to TensorBoard as one scalar per entry (``T_C/i->j``) and as
    heat-map images.

    Args:
        loss: the CALC loss of the trainer.
        optimizer: the trainer's optimizer, for the learning rates (None: not reported).
        summary_writer: a TensorBoard writer to share with other handlers; None creates one in ``log_dir``.
        log_dir: folder of the TensorBoard events when ``summary_writer`` is None.
        class_names: names of the classes on the T_C heat map's axes.
    """

    def __init__(
        self,
        loss: CALCLoss,
        optimizer: torch.optim.Optimizer | None = None,
        summary_writer: SummaryWriter | None = None,
        log_dir: str = "./runs",
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__(summary_writer=summary_writer, log_dir=log_dir)
        self.loss = loss
        self.optimizer = optimizer
        self.class_names = class_names
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

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
        for tag, matrix in matrices.items():
            for i, row in enumerate(matrix.tolist()):
                for j, value in enumerate(row):
                    self._writer.add_scalar(f"{tag}/{i}->{j}", value, epoch)
            names = self.class_names if tag == "T_C" else ["different", "same"]
            self._writer.add_figure(f"{tag}/matrix", transition_figure(matrix, tag, names), epoch)
        self._writer.flush()
        diagonals = {tag: ", ".join(f"{v:.3f}" for v in torch.diagonal(m).tolist()) for tag, m in matrices.items()}
        self.logger.info(f"epoch {epoch}: T_C diagonal [{diagonals['T_C']}], T_A diagonal [{diagonals['T_A']}]")


def transition_figure(matrix: torch.Tensor, title: str, names: list[str] | None = None):
    """A matplotlib heat map of a (K, K) transition matrix with its values written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    size = matrix.shape[0]
    names = names or [str(i) for i in range(size)]
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * size, 1.0 + 0.8 * size))
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
