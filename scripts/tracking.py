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
"""Experiment tracking: what ``--tracking mlflow`` records of a JCAS training or evaluation run.

MONAI's bundle runner (``python -m monai.bundle run ... --tracking mlflow``) appends a ``MLFlowHandler`` to the
trainer's and the validator's handlers, with settings made for any bundle. :func:`prepare_mlflow` completes them for
this bundle before the engine is built (``train#trainer#_requires_`` in ``configs/train.json``,
``validate#evaluator#_requires_`` in ``configs/evaluate.json``):

- the run's hyperparameters (``experiment_params`` in ``configs/train.json``) as MLflow parameters;
- the training loss of each iteration read from the trainer's output dict (MONAI's default reads a decollated list,
  and the trainer here does not decollate);
- the learned ``T_C`` and ``T_A`` of each epoch as metrics ``T_C/i-j`` (row ``i`` clean, column ``j`` noisy), from
  ``engine.state.transitions`` of :class:`scripts.handlers.CALCStatsHandler`, when that handler is on;
- files written by the run (``transitions.json``, ``T_C.png``, the learning curve; the metric CSVs of an
  evaluation) as artifacts, next to the executed config that MONAI writes to ``output_dir`` at launch (MONAI 1.6
  names it ``<output_dir> + '/config_<time>.json'``, a path only when ``output_dir`` is an expression; with
  ``--output_dir /a/folder`` the name is rebuilt here);
- an evaluation's run is ended when the evaluation completes (MONAI's validator handler leaves its run open).

Without tracking there is no ``MLFlowHandler`` and nothing changes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from monai.handlers import MLFlowHandler

from .handlers import CALCStatsHandler

__all__ = ["default_run_name", "prepare_mlflow", "training_loss"]

_EXECUTED_CONFIG = re.compile(r" \+ '/(config_\d{8}_\d{6}\.json)'$")  # MONAI's name of the executed config
_METRIC_NAME = re.compile(r"[/\w.\- :]*")  # the characters MLflow accepts in a metric name


def default_run_name(loss_type: str) -> str:
    """A run name of this launch, e.g. ``jcas_20260101_120000``.

    MONAI's ``MLFlowHandler`` without a run name joins any unfinished run of the experiment, such as one left by a
    crashed training; a name of its own gives every launch its own run.
    """
    return f"{loss_type}_{time.strftime('%Y%m%d_%H%M%S')}"


def training_loss(output: Any) -> float:
    """The loss of one iteration from a trainer's output: a dict, or a decollated list of dicts."""
    if isinstance(output, Sequence) and output and isinstance(output[0], Mapping):
        output = output[0]
    if not isinstance(output, Mapping) or "loss" not in output:
        raise ValueError(f"expected the trainer's output to hold 'loss', got {type(output).__name__}")
    loss = output["loss"]
    return float(loss.detach() if isinstance(loss, torch.Tensor) else loss)


def _artifact_path(path: Any, output_dir: str | None) -> Any:
    """``path``, or the executed config in ``output_dir`` when ``path`` is MONAI's unevaluated name of it."""
    match = _EXECUTED_CONFIG.search(path) if isinstance(path, str) and output_dir else None
    if match is None or os.path.exists(path):
        return path
    return os.path.join(output_dir, match.group(1))


def prepare_mlflow(
    handlers: Iterable[Any],
    params: Mapping[str, Any],
    artifacts: Sequence[str] = (),
    output_dir: str | None = None,
    close_on_complete: bool = False,
    class_names: Sequence[str] = (),
) -> list[MLFlowHandler]:
    """Completes the ``MLFlowHandler`` that ``--tracking mlflow`` added to ``handlers`` (see the module docstring).

    Args:
        handlers: the engine's handlers (``train#handlers``, ``validate#handlers``).
        params: hyperparameters to log as MLflow parameters; values are logged as ``str(value)``. Parameters the
            handler was given already (a tracking settings file's ``experiment_param``) win.
        artifacts: files or folders to log when the engine completes; a path that does not exist then is skipped.
        output_dir: the bundle's ``output_dir``, where MONAI writes the executed config.
        close_on_complete: end the MLflow run when the engine completes (an evaluation: MONAI's validator handler
            leaves its run open, made for a trainer that ends it); takes effect when called before ``attach``.
        class_names: the names in the per-class metrics (``val_dice/<name>``), checked against MLflow's rule.

    Returns:
        The ``MLFlowHandler`` objects changed (none without tracking).

    Raises:
        ValueError: when tracking, a class name that MLflow refuses in a metric name.
    """
    handlers = list(handlers)
    tracked = [h for h in handlers if isinstance(h, MLFlowHandler)]
    refused = [name for name in class_names if not _METRIC_NAME.fullmatch(name)] if tracked else []
    if refused:
        raise ValueError(
            f"class_names: MLflow refuses {refused} in metric names (val_dice/<name>); with --tracking mlflow use "
            "letters, digits, spaces and _ - . : / only"
        )
    has_transitions = any(isinstance(h, CALCStatsHandler) for h in handlers)
    for handler in tracked:
        handler.experiment_param = {**params, **(handler.experiment_param or {})}
        handler.output_transform = training_loss
        handler.close_on_complete = handler.close_on_complete or close_on_complete
        kept = [_artifact_path(a, output_dir) for a in handler.artifacts if a]
        handler.artifacts = tuple(dict.fromkeys([*kept, *artifacts]))
        attributes = list(handler.state_attributes or ())
        if has_transitions and "transitions" not in attributes:
            handler.state_attributes = [*attributes, "transitions"]
    return tracked
