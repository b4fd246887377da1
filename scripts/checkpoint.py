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
"""Training state that can be trusted: checkpoints written atomically, never with a NaN or an infinity, resumed only
from a file that loads and matches the configuration; training stops at the first non-finite loss or parameter.

MONAI's ``CheckpointSaver`` and ``CheckpointLoader`` do the work; the classes here are thin subclasses that swap in
an atomic, finite-only ``DiskSaver`` and make the loader's errors name the file and the mismatching setting.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = [
    "AtomicDiskSaver",
    "CheckpointError",
    "CheckpointSettings",
    "DivergenceError",
    "NonFiniteStateError",
    "SafeCheckpointLoader",
    "SafeCheckpointSaver",
    "StopOnNonFinite",
    "checkpoint_problem",
    "newest_loadable",
    "non_finite_tensors",
    "run_or_exit",
]

logger = logging.getLogger(__name__)


class DivergenceError(FloatingPointError):
    """Training produced a NaN or an infinity (loss term, parameter or checkpointed state)."""


class NonFiniteStateError(DivergenceError):
    """A checkpoint would have held a NaN or an infinity, and was not written."""


class CheckpointError(RuntimeError):
    """A checkpoint does not load, or does not match the configuration it is loaded into."""


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in a nested state dict that hold a NaN or an infinity."""
    if isinstance(state, torch.Tensor):
        floating = state.is_floating_point() or state.is_complex()
        return [prefix or "<tensor>"] if floating and not bool(torch.isfinite(state).all()) else []
    if isinstance(state, Mapping):
        items: Any = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return []
    return [
        name for key, value in items for name in non_finite_tensors(value, f"{prefix}.{key}" if prefix else f"{key}")
    ]


def _names(names: Sequence[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


class AtomicDiskSaver(DiskSaver):
    """ignite's ``DiskSaver(atomic=True)`` that refuses non-finite state and deletes old files only after a write.

    Each checkpoint is written to a temporary file in ``dirname`` and renamed, so a killed process leaves either the
    complete file or none (plus a stray ``tmp*`` file). ignite's ``Checkpoint`` removes the oldest file *before*
    writing the new one; here that removal waits until the next file is complete. A checkpoint with a NaN or an
    infinity in any floating-point tensor raises :class:`NonFiniteStateError` and writes nothing.

    Args:
        dirname: folder of the checkpoints (created if missing).
        filename: a fixed file name for every save (as ``model.pt``), or None for the name ``Checkpoint`` gives.
    """

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, atomic=True, create_dir=True, require_empty=False)
        self.filename = filename
        self._pending_removal: list[str] = []

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        filename = self.filename or filename
        bad = non_finite_tensors(checkpoint)
        if bad:
            raise NonFiniteStateError(
                f"refusing to write '{self.dirname / filename}': non-finite values in {_names(bad)}"
            )
        super().__call__(checkpoint, filename, metadata)
        done, self._pending_removal = self._pending_removal, []
        for old in done:
            if old != filename and idist.get_rank() == self.save_on_rank:
                (self.dirname / old).unlink(missing_ok=True)

    def remove(self, filename: str) -> None:
        """Remove ``filename`` once the next checkpoint is written (ignite asks just before writing it)."""
        self._pending_removal.append(self.filename or filename)


class SafeCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` writing through :class:`AtomicDiskSaver`; its best key metric is resumable.

    - Every file (interval, key-metric ``model.pt``, final) is written atomically and only when finite.
    - No checkpoint is written when training stops on an exception: ignite runs only the first ``EXCEPTION_RAISED``
      handler (MONAI's ``StatsHandler`` attaches first), and the state mid-iteration is not one to resume from.
      ``save_final`` writes ``final_filename`` when training completes.
    - ``state_dict()`` holds the best key metric, its epoch and the key-metric checkpoint's tracking list; add this
      saver (the one on the evaluator) to the training checkpoint's ``save_dict`` and a resumed run replaces
      ``model.pt`` only with a better model than the best before the interruption.

    Args:
        save_dir: folder of the checkpoints.
        save_dict: objects to save, as for MONAI's ``CheckpointSaver``.
        kwargs: the other arguments of MONAI's ``CheckpointSaver``.
    """

    def __init__(self, save_dir: str, save_dict: dict, **kwargs: Any) -> None:
        super().__init__(save_dir=save_dir, save_dict=save_dict, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler = AtomicDiskSaver(save_dir, filename=checkpoint.save_handler.filename)
        self._engine: Engine | None = None

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        self._engine = engine
        if self._final_checkpoint is not None:
            engine.remove_event_handler(self.exception_raised, Events.EXCEPTION_RAISED)

    def state_dict(self) -> dict[str, Any]:
        tracked = {} if self._key_metric_checkpoint is None else self._key_metric_checkpoint.state_dict()
        state = getattr(self._engine, "state", None)
        return {  # plain floats, ints and strings, so that torch.load(weights_only=True) reads it
            "checkpointer": {key: [(float(p), str(name)) for p, name in items] for key, items in tracked.items()},
            "best_metric": float(getattr(state, "best_metric", -1)),
            "best_metric_epoch": int(getattr(state, "best_metric_epoch", -1)),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict["checkpointer"]:
            super().load_state_dict(state_dict["checkpointer"])
        if self._engine is not None:
            self._engine.state.best_metric = state_dict["best_metric"]
            self._engine.state.best_metric_epoch = state_dict["best_metric_epoch"]


class CheckpointSettings:
    """The configuration settings a checkpoint depends on, saved with it and compared when it is loaded.

    Put it in the training checkpoint's ``save_dict`` (and ``load_dict``); loading a checkpoint written with other
    values raises ``ValueError`` naming each setting, e.g. ``num_classes is 4 in the checkpoint, 3 in the config``.
    Settings only one side knows are not compared.

    Args:
        settings: name -> value (numbers, strings, booleans, lists of them).
    """

    def __init__(self, **settings: Any) -> None:
        self.settings = {name: list(v) if isinstance(v, (list, tuple)) else v for name, v in settings.items()}

    def state_dict(self) -> dict[str, Any]:
        return dict(self.settings)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        differ = [
            f"{name} is {state_dict[name]} in the checkpoint, {value} in the config"
            for name, value in self.settings.items()
            if name in state_dict and state_dict[name] != value
        ]
        if differ:
            raise ValueError("; ".join(differ))


class SafeCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` (``torch.load(weights_only=True)``) whose errors name the file and the mismatch.

    :class:`CheckpointSettings` in ``load_dict`` are loaded first, so a checkpoint of another configuration fails on
    the setting that differs rather than on the first tensor shape. Any failure (a file that does not load, a missing
    key, a shape mismatch) raises :class:`CheckpointError` starting with the file's path.

    Args:
        load_path: the checkpoint file.
        load_dict: objects to load into, as for MONAI's ``CheckpointLoader``.
        kwargs: the other arguments of MONAI's ``CheckpointLoader``.
    """

    def __init__(self, load_path: str, load_dict: dict, **kwargs: Any) -> None:
        ordered = dict(sorted(load_dict.items(), key=lambda item: not isinstance(item[1], CheckpointSettings)))
        super().__init__(load_path=load_path, load_dict=ordered, **kwargs)

    def __call__(self, engine: Engine) -> None:
        try:
            super().__call__(engine)
        except Exception as e:
            raise CheckpointError(f"cannot resume from '{self.load_path}': {type(e).__name__}: {e}") from e


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why the checkpoint at ``path`` cannot be resumed from (empty, does not load, non-finite), or None."""
    if os.path.getsize(path) == 0:
        return "the file is empty (0 bytes)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        return f"it does not load ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    bad = non_finite_tensors(state)
    return f"non-finite values in {_names(bad)}" if bad else None


def newest_loadable(paths: Sequence[str]) -> str:
    """The newest of ``paths`` (highest number in the name, then modification time) that
    :func:`checkpoint_problem` finds nothing wrong with; each newer one skipped is logged with the reason.

    Raises:
        FileNotFoundError: when none loads, listing each file and why.
    """

    def newness(path: str) -> tuple[int, float]:
        numbers = re.findall(r"\d+", os.path.basename(path))
        return (int(numbers[-1]) if numbers else -1, os.path.getmtime(path))

    skipped = []
    for path in sorted(paths, key=newness, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning(f"resume: skipping checkpoint '{path}': {problem}")
        skipped.append(f"'{path}': {problem}")
    raise FileNotFoundError("no checkpoint to resume from loads: " + "; ".join(skipped))


class StopOnNonFinite:
    """Stops training at the first iteration whose loss terms or parameters are not finite.

    After every iteration (so after the optimiser step) each term of ``loss.last_terms`` and every parameter of
    ``network`` and ``loss`` (``T_C``, ``T_A``) is checked; the first NaN or infinity raises
    :class:`DivergenceError` naming the epoch, the iteration and the terms (or parameters). ignite's
    ``TerminateOnNan`` would end the run quietly (exit status 0, and ``COMPLETED`` fires, so the final checkpoint is
    attempted) without naming the iteration or the term; here the run fails, and no checkpoint of the diverged
    epoch is written. Under DDP the gradients are averaged, so every process diverges at the same iteration.

    Args:
        loss: the trainer's loss; its ``last_terms`` (name -> tensor) and parameters are checked.
        network: the trained network, whose parameters are checked (None: only the loss).
    """

    def __init__(self, loss: torch.nn.Module, network: torch.nn.Module | None = None) -> None:
        self.loss = loss
        named = [] if network is None else [(f"network.{n}", p) for n, p in network.named_parameters()]
        self.parameters = named + [(f"loss.{n}", p) for n, p in loss.named_parameters()]

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        terms = {name: float(value) for name, value in getattr(self.loss, "last_terms", {}).items()}
        output = engine.state.output
        if "total" not in terms and isinstance(output, Mapping) and "loss" in output:
            terms["total"] = float(output["loss"])
        bad_terms = [name for name, value in terms.items() if not math.isfinite(value)]
        params_ok = not self.parameters or bool(
            torch.stack([p.detach().isfinite().all() for _, p in self.parameters]).all()
        )
        if not bad_terms and params_ok:
            return
        state = engine.state
        where = f"epoch {state.epoch}, iteration {state.iteration}"
        if state.epoch_length:
            where += f" ({(state.iteration - 1) % state.epoch_length + 1} of {state.epoch_length} in the epoch)"
        if bad_terms:
            what = "non-finite loss term " + ", ".join(f"{name}={terms[name]}" for name in bad_terms)
        else:
            bad = [name for name, p in self.parameters if not bool(p.detach().isfinite().all())]
            what = f"non-finite parameters after the optimiser step: {_names(bad)}"
        values = ", ".join(f"{name}={value:.4g}" for name, value in terms.items())
        raise DivergenceError(
            f"training diverged at {where}: {what} (loss terms: {values}). No checkpoint of this epoch was written; "
            "lower learning_rate (or transition_lr, the lambda_* weights) and train again."
        )


def run_or_exit(engine: Engine) -> None:
    """Run ``engine``; when training diverges (:class:`DivergenceError`), end the process with the reason as the last
    line of its output and exit status 1, instead of a traceback of the config runner (the traceback is logged)."""
    try:
        engine.run()
    except DivergenceError as e:
        raise SystemExit(f"{type(e).__name__}: {e}") from None
