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
"""Ignite handlers of what a person reads after a run: per-class metrics named by class, validation images in
TensorBoard, and the learning curve."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import MetricsSaver, TensorBoardHandler
from monai.handlers.utils import write_metrics_reports
from monai.utils import convert_to_numpy, string_list_all_gather
from torch.utils.tensorboard import SummaryWriter

from .outputs import colorize, display_image, middle_slice

__all__ = ["ClassMetricsHandler", "ClassMetricsSaver", "LearningCurveHandler", "ValidationImagesHandler"]


def _check_classes(details: Any, class_names: Sequence[str], metric: str) -> torch.Tensor:
    """A metric's per-image details as an (N, C) float tensor, C the number of ``class_names``."""
    values = torch.as_tensor(details).float()
    values = values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1)
    if values.shape[1] != len(class_names):
        raise ValueError(
            f"metric '{metric}' has {values.shape[1]} classes per image, but {len(class_names)} class names were given "
            f"({list(class_names)}); with include_background false, give the foreground names (class_names[1:])"
        )
    return values


def _selected(key: str, names: Sequence[str] | None) -> bool:
    """Whether ``key`` is in a ``MetricsSaver`` selection ``names`` (``metrics`` or ``metric_details``: None, "*",
    names)."""
    return names is not None and (key in names or "*" in names)


class ClassMetricsSaver(MetricsSaver):
    """MONAI's ``MetricsSaver`` with the classes named in the CSVs: columns ``shaft, wrist, ...`` of
    ``<metric>_raw.csv`` and rows of ``<metric>_summary.csv`` instead of ``class0, class1, ...``.

    The names go to ``monai.handlers.utils.write_metrics_reports(class_labels=...)``; all else is ``MetricsSaver``'s.
    As there, every process runs the handler (the file names are gathered from all of them, as the metric details
    are) and process ``save_rank`` writes the files.

    Args:
        save_dir: folder of the CSVs.
        class_names: one name per class of the metric details (foreground only when ``include_background`` is
            false).
        metrics, metric_details, batch_transform, summary_ops, save_rank, delimiter, output_type: see
            ``MetricsSaver``.
    """

    def __init__(
        self,
        save_dir: str,
        class_names: Sequence[str],
        metrics: str | Sequence[str] | None = "*",
        metric_details: str | Sequence[str] | None = None,
        batch_transform: Callable = lambda x: x,
        summary_ops: str | Sequence[str] | None = None,
        save_rank: int = 0,
        delimiter: str = ",",
        output_type: str = "csv",
    ) -> None:
        super().__init__(
            save_dir, metrics, metric_details, batch_transform, summary_ops, save_rank, delimiter, output_type
        )
        self.class_names = [str(name) for name in class_names]

    def __call__(self, engine: Engine) -> None:
        rank, world_size = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        if self.save_rank >= world_size:
            raise ValueError(f"save_rank {self.save_rank} is not a process of the {world_size} running")
        images = string_list_all_gather(strings=self._filenames) if world_size > 1 else self._filenames
        if rank != self.save_rank:
            return
        metrics = {k: v for k, v in engine.state.metrics.items() if _selected(k, self.metrics)}
        details = getattr(engine.state, "metric_details", {})
        details = {k: v for k, v in details.items() if _selected(k, self.metric_details)}
        for key, value in details.items():
            _check_classes(value, self.class_names, key)
        write_metrics_reports(
            save_dir=self.save_dir,
            images=images or None,
            metrics=metrics,
            metric_details=details,
            summary_ops=self.summary_ops,
            deli=self.deli,
            output_type=self.output_type,
            class_labels=self.class_names,
        )


class ClassMetricsHandler:
    """Puts each class's value of metrics into ``engine.state.metrics``, named by class (``val_dice/shaft``).

    At each epoch end, after the metrics are computed, the per-image details of each metric (N, C: MONAI's metric
    handlers keep them in ``engine.state.metric_details``) are averaged per class over the images where the class
    is defined (``nanmean``, the paper's per-class metric). ``StatsHandler`` and ``TensorBoardStatsHandler``
    attached after this handler print and plot them.

    Args:
        class_names: one name per class of the details (foreground only when ``include_background`` is false).
        metric_names: metric name to the prefix of its per-class entries, e.g.
            ``{"val_mean_dice": "val_dice", "val_mean_iou": "val_jaccard"}``.
    """

    def __init__(self, class_names: Sequence[str], metric_names: Mapping[str, str]) -> None:
        self.class_names = [str(name) for name in class_names]
        self.metric_names = dict(metric_names)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        details = getattr(engine.state, "metric_details", {})
        for metric, prefix in self.metric_names.items():
            if metric not in details:
                raise KeyError(f"metric '{metric}' has no per-image details (save_details false, or not attached)")
            per_class = torch.nanmean(_check_classes(details[metric], self.class_names, metric), dim=0)
            for name, value in zip(self.class_names, per_class.tolist(), strict=True):
                engine.state.metrics[f"{prefix}/{name}"] = value


class ValidationImagesHandler(TensorBoardHandler):
    """Shows the first ``max_cases`` validation cases in TensorBoard every epoch: image | label | prediction.

    Each case is one RGB image ``<tag>/<i>``, the image (its first three channels, or one as grey, stretched to the
    full range) beside its label and the prediction coloured by :func:`scripts.outputs.label_palette`. The label is
    the one given in the datalist (noisy where the validation labels are noisy). The two spatial axes are swapped
    as MONAI's PNG writer does, so PNG/JPG frames show upright; a 3D volume shows its middle slice along the last
    axis. The step is the engine's epoch (the trainer's, for a validator run by ``ValidationHandler``).

    Args:
        summary_writer: a TensorBoard writer to share with other handlers; None creates one in ``log_dir``.
        log_dir: folder of the TensorBoard events when ``summary_writer`` is None.
        max_cases: cases shown (the first ones of the epoch).
        spatial_dims: 2 or 3.
        tag: TensorBoard tag prefix.
        keys: the keys of the image (CH[WD]), the label and the prediction (1H[WD] indices or CH[WD] one-hot) in
            the engine's decollated output.
    """

    def __init__(
        self,
        summary_writer: SummaryWriter | None = None,
        log_dir: str = "./runs",
        max_cases: int = 4,
        spatial_dims: int = 2,
        tag: str = "val_case",
        keys: Sequence[str] = ("image", "label", "pred"),
    ) -> None:
        super().__init__(summary_writer=summary_writer, log_dir=log_dir)
        if max_cases < 0:
            raise ValueError(f"expected max_cases >= 0, got {max_cases}")
        self.max_cases = max_cases
        self.spatial_dims = spatial_dims
        self.tag = tag
        self.keys = tuple(keys)
        self._panels: list[np.ndarray] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda _: self._panels.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def panel(self, image: torch.Tensor, label: torch.Tensor, pred: torch.Tensor) -> np.ndarray:
        """HW3 uint8 panel of one case: image CH[WD], label and pred 1H[WD] indices or CH[WD] one-hot."""
        columns = [(display_image(middle_slice(image, self.spatial_dims)) * 255).astype(np.uint8)]
        for classes in (label, pred):
            classes = convert_to_numpy(classes)
            indices = classes.argmax(0) if classes.shape[0] > 1 else classes[0]
            columns.append(colorize(middle_slice(indices[None], self.spatial_dims)[0]))
        return np.concatenate([np.swapaxes(c, 0, 1) for c in columns], axis=1)

    def collect(self, engine: Engine) -> None:
        output = engine.state.output
        for case in output if isinstance(output, list) else []:
            if len(self._panels) >= self.max_cases:
                return
            self._panels.append(self.panel(*(case[key].detach().cpu() for key in self.keys)))

    def __call__(self, engine: Engine) -> None:
        for i, panel in enumerate(self._panels):
            self._writer.add_image(f"{self.tag}/{i}", panel, engine.state.epoch, dataformats="HWC")
        self._writer.flush()


def _loss_of(output: Any) -> float:
    loss = output["loss"]
    return float(loss.detach() if isinstance(loss, torch.Tensor) else loss)


class LearningCurveHandler:
    """Plots the training loss and the validation metric per epoch at the end of training.

    Attach it to the trainer. It averages ``output_transform(engine.state.output)`` over each epoch and reads
    ``metric_name`` from ``validator.state.metrics`` after each validation, keeps both in ``<name>.json`` (rewritten
    every epoch; a resumed run continues it) and at the end of training writes ``<name>.png``: the loss on the left
    axis, the metric on the right one.

    Args:
        output_dir: folder of the JSON and the PNG.
        validator: the evaluator run by ``ValidationHandler`` (None: the loss only).
        metric_name: the validator's metric to plot.
        output_transform: the loss of one iteration from the trainer's output.
        name: file name stem.
    """

    def __init__(
        self,
        output_dir: str,
        validator: Engine | None = None,
        metric_name: str = "val_mean_dice",
        output_transform: Callable[[Any], float] = _loss_of,
        name: str = "learning_curve",
    ) -> None:
        self.output_dir = output_dir
        self.validator = validator
        self.metric_name = metric_name
        self.output_transform = output_transform
        self.name = name
        self.history: dict[int, dict[str, float]] = {}
        self._loss_sum, self._count, self._started = 0.0, 0, False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.start_epoch)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.end_epoch)
        engine.add_event_handler(Events.COMPLETED, self)
        if self.validator is not None:
            self.validator.add_event_handler(Events.EPOCH_COMPLETED, self.record_validation)

    def start_epoch(self, engine: Engine) -> None:
        path = os.path.join(self.output_dir, f"{self.name}.json")
        if not self._started and os.path.isfile(path):  # a resumed run: keep the epochs before this one
            with open(path) as f:
                self.history = {r["epoch"]: r for r in json.load(f) if r["epoch"] < engine.state.epoch}
        self._started = True
        self._loss_sum, self._count = 0.0, 0

    def accumulate(self, engine: Engine) -> None:
        self._loss_sum += self.output_transform(engine.state.output)
        self._count += 1

    def end_epoch(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        self.history.setdefault(epoch, {"epoch": epoch})["train_loss"] = self._loss_sum / max(self._count, 1)
        self.save_history()

    def record_validation(self, validator: Engine) -> None:
        if self.metric_name in validator.state.metrics:
            epoch, value = validator.state.epoch, validator.state.metrics[self.metric_name]
            self.history.setdefault(epoch, {"epoch": epoch})[self.metric_name] = value
            self.save_history()

    def save_history(self) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, f"{self.name}.json"), "w") as f:
            json.dump([self.history[e] for e in sorted(self.history)], f, indent=1)

    def __call__(self, engine: Engine) -> None:
        fig = learning_curve_figure([self.history[e] for e in sorted(self.history)], self.metric_name)
        fig.savefig(os.path.join(self.output_dir, f"{self.name}.png"), dpi=100)


def learning_curve_figure(history: Sequence[Mapping[str, float]], metric_name: str = "val_mean_dice"):
    """A matplotlib figure of ``train_loss`` (left axis) and ``metric_name`` (right axis, 0..1) per ``epoch``."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no display backend
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in history if "train_loss" in r]
    ax.plot(epochs, [r["train_loss"] for r in history if "train_loss" in r], color="tab:blue", marker=".")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("train loss", color="tab:blue")
    right = ax.twinx()
    epochs = [r["epoch"] for r in history if metric_name in r]
    right.plot(epochs, [r[metric_name] for r in history if metric_name in r], color="tab:orange", marker=".")
    right.set_ylim(0, 1)
    right.set_ylabel(metric_name, color="tab:orange")
    ax.set_title("learning curve")
    fig.tight_layout()
    return fig
