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
"""Start-up checks of the configuration, and how a failed run reports its reason.

The configs' ``initialize`` lists call :func:`check_config` before any data is read or any file is written: every
problem raises one :class:`ConfigError` listing each key, what was expected and what was given. Without it these
surface late or never (``num_classes`` 1 as "label values must lie in 0..0", a wrong-length ``class_names`` after
the first epoch, an affinity grid of 512 on 64 x 64 images as the kernel killing the process for memory, outputs
written among the labels).

:func:`install_exit_on_error`, first in the lists, makes an uncaught error end ``python -m monai.bundle run`` with
exit status 1 and the reason as the last line: a :class:`ConfigError` alone, any other error after its traceback,
summarised by the error the bundle raised, not MONAI's "Failed to instantiate component" wrapper around it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "LOSS_TYPES",
    "MAX_EXACT_AFFINITY_PAIRS",
    "ConfigError",
    "check_config",
    "check_outputs_outside_inputs",
    "checked_choice",
    "config_problems",
    "install_exit_on_error",
    "network_downsampling",
    "reported_error",
]

logger = logging.getLogger(__name__)

# train.json's loss_type, see scripts.robust_losses.make_loss
LOSS_TYPES = ("jcas", "ce", "dice_ce", "gce", "tloss", "adele")

# Pixel pairs per training step (batch_size * N**2) allowed for the exact affinity loss (affinity_pairs null).
# Measured on a CPU, training step peak memory: 5.4e8 pairs 1.7 GB, 1.3e9 pairs 4.6 GB (about 3.5 bytes a pair),
# 37 s a step; an affinity grid of 512 (1.4e11 pairs at batch 2) was killed for memory.
MAX_EXACT_AFFINITY_PAIRS = 2**30
_BYTES_PER_PAIR = 3.5
_SCRIPTS_DIR = os.path.dirname(os.path.abspath(__file__))


class ConfigError(ValueError):
    """Config keys hold values the bundle cannot run with; the message names each key and what was expected."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _sizes(value: Any, spatial_dims: int) -> tuple | None:
    """``value`` (an int or one per spatial dim) as a tuple of ``spatial_dims`` ints, or None if it is not one."""
    sizes = (value,) * spatial_dims if _is_int(value) else value
    if isinstance(sizes, (list, tuple)) and len(sizes) == spatial_dims and all(_is_int(s) for s in sizes):
        return tuple(sizes)
    return None


def network_downsampling(unet_strides: Any, spatial_dims: int) -> tuple[int, ...] | None:
    """The UNet backbone's total downsampling per spatial dim: the product of ``unet_strides`` (each level one int,
    or one int per dim), e.g. ``(16, 16)`` for ``[2, 2, 2, 2]`` in 2D; None when ``unet_strides`` is not such a list.

    MONAI's UNet takes an input whose size in each dim is a multiple of this (else its skip connections do not
    match: 40 x 40 with four strides of 2 fails), and whose deepest features (size / downsampling) hold more than one
    element (its instance norm needs two: 16 x 16 fails, 16 x 32 runs).
    """
    if not isinstance(unet_strides, (list, tuple)) or not _is_int(spatial_dims) or spatial_dims < 1:
        return None
    total = [1] * spatial_dims
    for stride in unet_strides:
        per_dim = _sizes(stride, spatial_dims)
        if per_dim is None or min(per_dim) < 1:
            return None
        total = [t * s for t, s in zip(total, per_dim, strict=True)]
    return tuple(total)


def _number_problem(key: str, value: Any, minimum: float, strict: bool = False) -> str | None:
    """Why ``value`` is not a finite number >= ``minimum`` (> when ``strict``), or None."""
    bound = f"{'>' if strict else '>='} {minimum:g}"
    if not _is_number(value) or not math.isfinite(value) or value < minimum or (strict and value == minimum):
        return f"{key}: expected a number {bound}, got {value!r}"
    return None


def check_outputs_outside_inputs(outputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
    """Refuse an output folder that is, or is inside, an input folder (the bundle never writes among its data).

    Args:
        outputs: config key -> folder the run writes (``output_dir``, ``ckpt_dir``); None values are skipped.
        inputs: config key -> folder the run reads (``dataset_dir``), or a file standing for its folder (a
            ``datalist``); None values are skipped.

    Raises:
        ConfigError: naming the output key, the input key and both paths.
    """
    problems = _output_problems(outputs, inputs)
    if problems:
        raise ConfigError(_message(problems))


def _output_problems(outputs: Mapping[str, Any], inputs: Mapping[str, Any]) -> list[str]:
    problems = []
    for in_key, in_path in inputs.items():
        if in_path is None:
            continue
        folder = Path(in_path).resolve()
        what = f"{in_key} '{in_path}'"
        if folder.is_file():
            folder, what = folder.parent, f"the folder of {in_key} '{in_path}' ('{folder.parent}')"
        for out_key, out_path in outputs.items():
            if out_path is not None and Path(out_path).resolve().is_relative_to(folder):
                problems.append(
                    f"{out_key}: expected a folder outside the input data (the bundle never writes among the images "
                    f"and labels), got '{out_path}', inside {what}"
                )
    return problems


def config_problems(
    *,
    num_classes: Any,
    class_names: Any = None,
    spatial_dims: Any = 2,
    image_size: Any = None,
    batch_size: Any = 1,
    num_samples: Any = 1,
    max_epochs: Any = None,
    warmup_epochs: Any = None,
    affinity_grid: Any = None,
    affinity_pairs: Any = None,
    lambda_affinity: Any = 0.0,
    lambda_volume: Any = 0.0,
    lambda_consistency: Any = 0.0,
    lambda_dice: Any = 0.0,
    learning_rate: Any = None,
    transition_lr: Any = None,
    weight_decay: Any = None,
    outputs: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    max_exact_affinity_pairs: int = MAX_EXACT_AFFINITY_PAIRS,
    loss_type: Any = None,
    unet_strides: Any = None,
    transition_init: Any = None,
    correction_lr_scale: Any = None,
) -> list[str]:
    """Each problem of the given config values, one line naming the key and what was expected (see
    :func:`check_config`). Values are the configs' keys of the same names; None (the default of most) skips a check.

    Args:
        num_classes: C, background included: an integer >= 2.
        class_names: C names, background first, or None.
        spatial_dims: 2 or 3.
        image_size: the network's input size, one int or one per spatial dim (a size <= 0 keeps the image's); in
            the patch and 3D configs the patch size. A multiple of the UNet's total downsampling in each dim, with
            deepest features of two elements or more (see :func:`network_downsampling`).
        batch_size: images per training step, >= 1.
        num_samples: patches drawn per image (``RandCropByPosNegLabeld`` in ``train_3d.json`` and
            ``train_patches.json``), >= 1.
        max_epochs: epochs of the run, >= 1.
        warmup_epochs: epochs without correction, 0..max_epochs (max_epochs: no correction).
        affinity_grid: the embedding's grid, one int or one per spatial dim, 2 to ``image_size`` in each: with one
            cell along a dim the affinity loss compares no neighbours along it (a 1 x 1 grid: the loss is 0 and DAR
            has one node).
        affinity_pairs: sampled pairs per image, a positive integer, or None for the exact affinity loss.
        lambda_affinity: weight of the affinity loss, >= 0.
        lambda_volume: weight of the volume term, >= 0.
        lambda_consistency: weight of the consistency term, >= 0.
        lambda_dice: weight of the forward-corrected Dice term, >= 0.
        learning_rate: the network's learning rate, > 0.
        transition_lr: the transitions' learning rate, >= 0.
        weight_decay: the network's weight decay, >= 0.
        outputs: config key -> folder the run writes, see :func:`check_outputs_outside_inputs`.
        inputs: config key -> folder (or datalist file) the run reads.
        max_exact_affinity_pairs: pixel pairs a step allowed for the exact affinity loss
            (batch_size * num_samples * N^2, N the grid's product) when ``lambda_affinity`` > 0 and
            ``affinity_pairs`` is None.
        loss_type: the training loss, one of :data:`LOSS_TYPES`.
        unet_strides: the UNet backbone's strides, one int (or one per spatial dim) per level.
        correction_lr_scale: the factor of the network's learning rate at the switch to the correction stage, > 0.
        transition_init: a number (the transitions' initial off-diagonal weight), or a ``num_classes`` square
            row-stochastic matrix (non-negative, rows summing to 1 within 1e-3).

    Returns:
        the problems, empty when there are none.
    """
    problems: list[str | None] = []
    if not _is_int(num_classes) or num_classes < 2:
        problems.append(
            f"num_classes: expected an integer >= 2 (background and at least one class), got {num_classes!r}"
        )
    if class_names is not None:
        if not isinstance(class_names, (list, tuple)) or not all(isinstance(n, str) for n in class_names):
            problems.append(f"class_names: expected a list of names (strings) or null, got {class_names!r}")
        elif _is_int(num_classes) and len(class_names) != num_classes:
            problems.append(
                f"class_names: expected num_classes = {num_classes} names, one per class with background first, "
                f"got {len(class_names)}: {list(class_names)}"
            )
    dims = spatial_dims if spatial_dims in (2, 3) and _is_int(spatial_dims) else None
    if dims is None:
        problems.append(f"spatial_dims: expected 2 or 3, got {spatial_dims!r}")
    if loss_type is not None and loss_type not in LOSS_TYPES:
        problems.append(f"loss_type: expected one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
    if not _is_int(batch_size) or batch_size < 1:
        problems.append(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    if not _is_int(num_samples) or num_samples < 1:
        problems.append(f"num_samples: expected an integer >= 1 (patches per image), got {num_samples!r}")
        num_samples = 1
    epochs_ok = max_epochs is None or (_is_int(max_epochs) and max_epochs >= 1)
    if not epochs_ok:
        problems.append(f"max_epochs: expected an integer >= 1, got {max_epochs!r}")
    warmup_ok = warmup_epochs in (None, "auto") or (_is_int(warmup_epochs) and warmup_epochs >= 0)
    if not warmup_ok:
        problems.append(
            "warmup_epochs: expected an integer >= 0 (0: correct from the start) or 'auto' (switch when early "
            f"learning ends), got {warmup_epochs!r}"
        )
    elif epochs_ok and _is_int(warmup_epochs) and max_epochs is not None and warmup_epochs > max_epochs:
        problems.append(
            f"warmup_epochs: expected at most max_epochs = {max_epochs} (less: the noise correction runs from epoch "
            f"warmup_epochs + 1; equal: the explicit way to train without correction), got {warmup_epochs}: the run "
            "would end in the warm-up and never correct the noise"
        )
    for key, value, strict in (
        ("lambda_affinity", lambda_affinity, False),
        ("lambda_volume", lambda_volume, False),
        ("lambda_consistency", lambda_consistency, False),
        ("lambda_dice", lambda_dice, False),
        ("learning_rate", learning_rate, True),
        ("correction_lr_scale", correction_lr_scale, True),
        ("transition_lr", transition_lr, False),
        ("weight_decay", weight_decay, False),
    ):
        if value is not None:  # None: not given, not checked
            problems.append(_number_problem(key, value, 0.0, strict))
    if transition_init is not None:
        problems.append(_transition_problem(transition_init, num_classes))
    if affinity_pairs is not None and (not _is_int(affinity_pairs) or affinity_pairs < 1):
        problems.append(
            f"affinity_pairs: expected a positive integer (sampled pairs per image) or null, got {affinity_pairs!r}"
        )
    downsampling = None
    if dims is not None and unet_strides is not None:
        downsampling = network_downsampling(unet_strides, dims)
        if downsampling is None:
            problems.append(
                f"unet_strides: expected a list of positive integers (or of {dims} per level), got {unet_strides!r}"
            )
    if dims is not None:
        problems += _size_problems(
            dims,
            image_size,
            affinity_grid,
            affinity_pairs,
            lambda_affinity,
            batch_size * num_samples if _is_int(batch_size) else batch_size,
            max_exact_affinity_pairs,
            downsampling,
        )
    problems += _output_problems(outputs or {}, inputs or {})
    return [p for p in problems if p]


def _size_problems(
    dims: int,
    image_size: Any,
    affinity_grid: Any,
    affinity_pairs: Any,
    lambda_affinity: Any,
    batch_size: Any,
    max_pairs: int,
    downsampling: tuple[int, ...] | None = None,
) -> list[str]:
    """Problems of ``image_size`` and ``affinity_grid``: shapes, the image against the network's downsampling, the
    grid within the image, the exact loss's pairs (``batch_size``: the network's inputs per step, images × patches
    per image)."""
    problems = []
    size = None if image_size is None else _sizes(image_size, dims)
    if image_size is not None and size is None:
        problems.append(f"image_size: expected {dims} integers (the network's input size), got {image_size!r}")
    if size is not None and downsampling is not None:
        problems += _downsampling_problems(size, downsampling)
    if affinity_grid is None:
        return problems
    grid = _sizes(affinity_grid, dims)
    if grid is None or min(grid) < 1:
        return problems + [f"affinity_grid: expected a positive integer or {dims} of them, got {affinity_grid!r}"]
    if min(grid) < 2:
        problems.append(
            f"affinity_grid: expected at least 2 cells in each dimension (with one cell along a dimension the affinity "
            f"loss compares no neighbours along it; a 1-cell grid makes it 0 and DAR a single node), got {list(grid)}"
        )
    if size is not None:
        larger = [d for d in range(dims) if 0 < size[d] < grid[d]]  # a size <= 0 keeps the input's size: unknown
        if larger:
            problems.append(
                f"affinity_grid: expected at most image_size {list(size)} in each dimension (the grid pools the "
                f"network's output), got {list(grid)}, larger in dimension {', '.join(map(str, larger))}"
            )
    exact = affinity_pairs is None and _is_number(lambda_affinity) and lambda_affinity > 0 and _is_int(batch_size)
    pairs = math.prod(grid) ** 2 * batch_size if exact else 0
    if pairs > max_pairs:
        problems.append(
            f"affinity_grid: expected at most {max_pairs:.3g} pixel pairs a step for the exact affinity loss "
            f"(affinity_pairs null; about {max_pairs * _BYTES_PER_PAIR / 2**30:.1f} GiB), got inputs per step "
            f"(batch_size * num_samples) * N^2 = "
            f"{batch_size} * {math.prod(grid)}^2 = {pairs:.3g} (about {pairs * _BYTES_PER_PAIR / 2**30:.0f} GiB) for "
            f"grid {list(grid)}: lower affinity_grid, or set affinity_pairs (e.g. 65536) for the sampled estimate"
        )
    return problems


def _downsampling_problems(size: tuple[int, ...], downsampling: tuple[int, ...]) -> list[str]:
    """Problems of the network's input ``size`` (a size <= 0: the image's own, unknown) against the UNet's total
    ``downsampling`` per dim (:func:`network_downsampling`)."""
    known = [d for d in range(len(size)) if size[d] > 0]
    why = (
        f"the UNet's total downsampling, the product of unet_strides, is {list(downsampling)}; the patch and 3D "
        "configs set image_size to patch_size"
    )
    off = [d for d in known if size[d] % downsampling[d]]
    if off:
        suggestion = [max(1, round(s / f)) * f if s > 0 else s for s, f in zip(size, downsampling, strict=True)]
        return [
            f"image_size: expected a multiple of {list(downsampling)} in each dimension ({why}), got {list(size)}, "
            f"not a multiple in dimension {', '.join(map(str, off))} (e.g. {suggestion})"
        ]
    if len(known) == len(size) and math.prod(s // f for s, f in zip(size, downsampling, strict=True)) < 2:
        return [
            f"image_size: expected at least twice {list(downsampling)} in one dimension ({why}; the deepest features "
            f"need two elements for the instance norm), got {list(size)}, deepest features "
            f"{[s // f for s, f in zip(size, downsampling, strict=True)]}"
        ]
    return []


def _transition_problem(value: Any, num_classes: Any) -> str | None:
    """Why ``value`` is not a valid ``transition_init`` (a finite number or a C x C row-stochastic matrix), or None."""
    if _is_number(value):
        return None if math.isfinite(value) else f"transition_init: expected a finite number, got {value!r}"
    size = num_classes if _is_int(num_classes) else None
    rows = value if isinstance(value, (list, tuple)) else None
    square = (
        rows is not None
        and (size is None or len(rows) == size)
        and all(isinstance(r, (list, tuple)) and len(r) == len(rows) and all(map(_is_number, r)) for r in rows)
    )
    shape = f"{size} x {size}" if size is not None else "square"
    if not square:
        return f"transition_init: expected a number or a {shape} matrix (one row per clean class), got {value!r}"
    negative = any(not math.isfinite(v) or v < 0 for r in rows for v in r)
    sums = [sum(r) for r in rows]
    if negative or any(abs(t - 1) > 1e-3 for t in sums):
        return (
            f"transition_init: expected a row-stochastic {shape} matrix (entries >= 0, each row summing to 1: row i "
            f"is p(noisy | clean i)), got {value!r}, row sums {[round(float(t), 4) for t in sums]}"
        )
    return None


def checked_choice(key: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` when it is one of ``choices``, for a config expression that picks a transform by a key's value.

    Example (train_3d.json: the CT window only when ``intensity`` is ``"ct"``)::

        "_disabled_": "$@scripts.config_check.checked_choice('intensity', @intensity, ('ct', 'mri')) != 'ct'"

    Raises:
        ConfigError: naming ``key``, the choices and ``value``.
    """
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _message(problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems in the config:\n" + "\n".join(f"  {p}" for p in problems)


def check_config(**values: Any) -> None:
    """Check config values before the run reads data or writes files; the keys are :func:`config_problems`'s.

    Checks: ``loss_type`` a known loss; ``num_classes`` >= 2; ``class_names`` one per class; ``spatial_dims`` 2 or 3;
    ``image_size`` and ``affinity_grid`` one int (or one per spatial dim) each, the image a multiple of the UNet's
    total downsampling (``unet_strides``) with deepest features of two elements or more, the grid 2 cells or more
    and no larger than the image; ``transition_init`` a number or a C x C row-stochastic matrix; with
    the exact affinity loss (``affinity_pairs`` null, ``lambda_affinity`` > 0) at most ``max_exact_affinity_pairs``
    (:data:`MAX_EXACT_AFFINITY_PAIRS`) pixel pairs a step; ``warmup_epochs`` <= ``max_epochs`` (equal: the explicit way
    to train without noise correction, logged); loss weights, ``weight_decay`` and ``transition_lr`` >= 0,
    ``learning_rate`` > 0; each of ``outputs`` (key -> folder written) outside each of ``inputs`` (key -> folder
    read, or a datalist file for its folder). Arguments left out are not checked (``num_classes`` is required).

    Example (a config's ``initialize`` list)::

        "$scripts.config_check.check_config(num_classes=@num_classes, class_names=@class_names, ...)"

    Args:
        values: config key -> value, as :func:`config_problems` takes them.

    Raises:
        ConfigError: listing every problem, each naming the key, what was expected and what was given.
    """
    problems = config_problems(**values)
    if problems:
        raise ConfigError(_message(problems))
    warmup, epochs = values.get("warmup_epochs"), values.get("max_epochs")
    if _is_int(warmup) and warmup == epochs:
        logger.info(f"warmup_epochs = max_epochs = {epochs}: training without noise correction (warm-up only)")


def reported_error(error: BaseException) -> BaseException:
    """The error to report for ``error``: the outermost one of its chain (causes, contexts) raised by the bundle's
    scripts (whose message carries the context the bundle added, e.g. the checkpoint's path around the setting that
    differs), else the innermost one; a :class:`ConfigError` anywhere in the chain wins."""
    chain: list[BaseException] = []
    while error is not None and all(error is not e for e in chain):
        chain.append(error)
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    for e in chain:
        if isinstance(e, ConfigError):
            return e
    for e in chain:
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None and os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) == _SCRIPTS_DIR:
            return e
    return chain[-1]


def _exit_on_error(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` of :func:`install_exit_on_error`."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    try:
        reported = reported_error(error)
        if isinstance(reported, ConfigError):
            print(f"{type(reported).__name__}: {reported}", file=sys.stderr)
        else:
            sys.__excepthook__(kind, error, tb)
            if reported is not error:
                print(f"\n{type(reported).__name__}: {reported}", file=sys.stderr)
    finally:
        _flush_and_exit()


def _flush_and_exit() -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(1)


def install_exit_on_error() -> None:
    """Make an uncaught error end the process with exit status 1 and its reason as the last line of the output.

    A :class:`ConfigError` prints its message alone; any other error its traceback, then (when the bundle raised it
    inside MONAI's wrappers) the bundle's error again as the last line (:func:`reported_error`). The process then
    ends with ``os._exit(1)`` after flushing the logs and the standard streams: a normal interpreter shutdown after
    an error in dataset building has been seen to abort with exit status 134 ("terminate called without an active
    exception") from native threads. ``KeyboardInterrupt`` is left to Python. Idempotent; ``sys.excepthook`` is only
    called for errors no one catches, so code that runs a workflow and catches its errors is not affected.
    """
    sys.excepthook = _exit_on_error
