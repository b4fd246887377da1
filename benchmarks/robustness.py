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
"""Robustness benchmark: JCAS against the peers a MONAI user would pick, under the noise annotators and automatic
labellers make, with paired 95 % intervals.

Usage::

    python -m benchmarks.robustness --quick                 # 2 modes, CE and JCAS, 1 seed, 20 epochs: minutes
    python -m benchmarks.robustness --jobs 2                # every 2D mode, method and seed (resumes)
    python -m benchmarks.robustness --dataset demo3d --jobs 2
    python -m benchmarks.robustness --report                # tables and plot from the committed results only
    python -m benchmarks.robustness --tune --tag NAME --methods JCAS --override key=value   # validation only

Every run trains and evaluates through the bundle's own configs with command-line overrides, in a subprocess, as a
user would (training, then the evaluations of its model, in one process: one MONAI start-up per run). The data: the
demo generator without noise (2D: 48 training, 32 validation, 64 test frames; 3D: 12, 6 and 16 volumes), whose
training labels ``scripts.make_noisy`` corrupts in each mode (noise seed 0, the same noisy labels for every training
seed). Every method but the paper's recipe stops on the bundle's validation plateau (``early_stop_patience``,
counted once early learning has ended) within ``max_epochs``; models are selected on the validation split (clean
labels); scores come from the test split (clean). Each finished run leaves one small JSON file (settings, code
identity, per-image Dice on validation and test, the learned transition) in
``benchmarks/results/robustness/<dataset>/<mode>/<method>/``: commit those, and a later invocation reuses them
instead of training again. A result is reused when its settings (dataset, mode, method overrides, epochs, seed) are
unchanged; the code it ran is recorded, not compared, so that an unrelated edit does not throw away hours of
training (``--verify N`` retrains N finished runs and checks that they reproduce bit for bit; ``--rerun_stale``
retrains the runs made by other code).

Statistics (:mod:`benchmarks.paired_stats`): every comparison with JCAS is the paired difference of mDice (same
seeds, same test images) with a 95 % interval from a bootstrap over the test images plus the spread over seeds;
"ahead", "level" and "behind" are read from that interval. The clean-label ceiling is the best clean-label run of the
methods without correction (CE, Dice-CE).

Output (``--out``, default ``docs/benchmarks``): ``robustness.md`` (tables), ``robustness.png``,
``robustness_runs.csv`` (one row per run) and ``robustness_paired.csv`` (one row per dataset, mode and method other
than JCAS: ``diff_vs_jcas`` = method − JCAS in mDice points, ``ci_low``, ``ci_high``); ``--tune`` writes
``tuning/<tag>.md`` and ``.csv`` from the validation split only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bundle_runs import (
    BUNDLE_ROOT,
    best_validation,
    bundle_run,
    cli_value,
    code_identity,
    epochs_trained,
    finished_seconds,
    read_per_image,
)
from benchmarks.paired_stats import PairedDifference, mdice, paired_difference, verdict

RESULTS = BUNDLE_ROOT / "benchmarks" / "results"
REFERENCE = "JCAS"  # the bundle's default method: every other method is compared with it
PAPER = "JCAS (paper)"


def _paper_recipe() -> dict[str, Any]:
    """The paper's method as this bundle implements it (docs/method.md), pinned in ``configs/paper_recipe.json``;
    its warm-up of three eighths of the budget is written "3/8" here (see :func:`method_overrides`)."""
    recipe = json.loads((BUNDLE_ROOT / "configs" / "paper_recipe.json").read_text())
    recipe.pop("_comment", None)
    if recipe["warmup_epochs"] != "$round(3 * @max_epochs / 8)":
        raise ValueError(f"configs/paper_recipe.json: unexpected warmup_epochs {recipe['warmup_epochs']!r}")
    return {**recipe, "warmup_epochs": "3/8"}


# peers: the same network without DAR, no correction stage; like the default, each stops on a validation plateau
# (train.json's early_stop_patience) within max_epochs, the model chosen on validation
PEER = {"use_dar": False, "lambda_affinity": 0.0, "lambda_consistency": 0.0, "warmup_epochs": "all"}
PAPER_RECIPE = _paper_recipe()
# settings pinned after runs were made with the behaviour they pin (absent then): --rekey counts them as present
NEW_PINS = {
    "early_stop_patience": None,
    "warmup_gce_q": None,
    "anchor_calibration": False,
    "warmup_dice": False,
    "correction_gce_q": None,
    "correction_lr_scale": 1.0,
}
METHODS: dict[str, dict[str, Any]] = {
    # the bundle's default: train.json as it is, nothing overridden but the budget
    "JCAS": {},
    PAPER: PAPER_RECIPE,
    # peers on the same backbone without DAR, each at the learning rate chosen on validation
    "CE": {**PEER, "loss_type": "ce", "learning_rate": 0.05},
    "Dice-CE": {**PEER, "loss_type": "dice_ce", "learning_rate": 0.05},
    "GCE": {**PEER, "loss_type": "gce", "learning_rate": 0.2},
    "T-Loss": {**PEER, "loss_type": "tloss", "learning_rate": 0.05},
    "ADELE": {**PEER, "loss_type": "adele", "learning_rate": 0.05},
}
CLEAN_METHODS = ("CE", "Dice-CE")  # also trained on the clean labels: the ceiling
# The train.json defaults a run's identity includes: every one for the default method (any change of a default
# retrains it); for the others the shared ones, and those only JCAS or early-learning correction read when the method
# uses them. A new key therefore retrains the default only; the other methods pin what they need (PEER, PAPER_RECIPE).
SHARED_KEYS = {
    "seed",
    "num_classes",
    "ignore_index",
    "spatial_dims",
    "image_channels",
    "image_size",
    "flip_axis",
    "max_epochs",
    "early_stop_patience",
    "val_interval",
    "batch_size",
    "num_samples",
    "learning_rate",
    "weight_decay",
    "momentum",
    "lr_power",
    "embedding_channels",
    "feature_channels",
    "unet_channels",
    "unet_strides",
    "affinity_grid",
}
JCAS_ONLY = {
    "transition_lr",
    "transition_init",
    "transition_estimate",
    "reference_transition",
    "lambda_volume",
    "lambda_dice",
    "lambda_affinity",
    "lambda_consistency",
    "affinity_pairs",
    "use_dar",
    "warmup_epochs",
    "warmup_gce_q",
    "warmup_dice",
    "correction_gce_q",
    "anchor_calibration",
    "correction_lr_scale",
}
CORRECTION_ONLY = {
    "correction_threshold",
    "early_learning_ratio",
    "early_learning_min_iou",
    "consistency_scales",
    "lambda_scale_consistency",
}


def train_defaults() -> dict[str, Any]:
    """The hyperparameters ``configs/train.json`` sets (its ``experiment_params``) that are plain values."""
    config = json.loads((BUNDLE_ROOT / "configs" / "train.json").read_text())
    return {k: config[k] for k in config["experiment_params"] if not str(config[k]).startswith(("$", "@"))}


@dataclass
class Dataset:
    """A benchmark dataset: how to make its clean datalist, the configs and overrides of its runs, its noise modes."""

    make: Callable[[Path], Path]
    configs: list[str]
    evaluate: list[str]
    overrides: dict[str, Any]
    modes: dict[str, dict[str, Any]]
    default_modes: list[str]
    epochs: int
    methods: list[str] = field(default_factory=list)


def _demo2d(folder: Path) -> Path:
    from scripts.demo_data import ensure_demo_dataset

    return Path(ensure_demo_dataset(folder, num_train=48, num_val=32, num_test=64, noise=None))


def _shapes2d(folder: Path) -> Path:
    from benchmarks.shapes_data import ensure_shapes_dataset

    return Path(ensure_shapes_dataset(folder, num_train=48, num_val=32, num_test=64))


def _demo3d(folder: Path) -> Path:
    from scripts.demo_data_3d import ensure_demo_dataset_3d

    return Path(ensure_demo_dataset_3d(folder, num_train=12, num_val=6, num_test=16, noise=None))


MODES_2D = {  # benchmark mode -> scripts.make_noisy.make_noisy arguments
    "ellipse": {"mode": "ellipse"},
    "morph": {"mode": "morph", "radius": (2, 6)},
    "symmetric": {"mode": "symmetric", "rate": 0.5},
    "pairflip": {"mode": "asymmetric", "rate": 0.4},  # c -> c + 1 at 40 %: identifiable, majority label right
    "confusion": {"mode": "asymmetric", "class_map": (0, 1, 1, 3), "rate": 0.6},  # wrist labelled shaft 60 %
    "omission": {"mode": "omission", "rate": 0.3},  # each part left out with probability 0.3
    "model": {"mode": "model"},  # labels predicted by a small network trained on 3 clean cases
    "cyclic50": {"mode": "asymmetric", "rate": 0.5},  # stress mode: singular T, no method can identify it
}
CLASS_TRANSITION_MODES = ("symmetric", "pairflip", "confusion", "omission", "cyclic50")  # a true T_C exists
DATASETS = {
    "demo2d": Dataset(
        make=_demo2d,
        configs=["train.json"],
        evaluate=["train.json", "evaluate.json"],
        # 96 x 80 network input (frames 160 x 128, labels scored at full size) and a 16 x 16 affinity grid: the
        # same pooling ratio as the defaults at 160 x 128, at the cost the 4 h budget allows
        overrides={"image_size": [96, 80], "affinity_grid": 16, "tensorboard_images": 0},
        modes=MODES_2D,
        default_modes=["ellipse", "morph", "symmetric", "pairflip", "confusion", "omission", "model"],
        epochs=60,
        methods=["CE", "Dice-CE", "GCE", "T-Loss", "ADELE", PAPER, "JCAS"],
    ),
    "shapes2d": Dataset(  # another kind of data, to check that fixed defaults hold where they were not chosen
        make=_shapes2d,
        configs=["train.json"],
        evaluate=["train.json", "evaluate.json"],
        overrides={
            "image_size": [96, 80],
            "affinity_grid": 16,
            "tensorboard_images": 0,
            "image_channels": 1,
            "num_classes": 4,
            "class_names": ["background", "organ", "lesion", "duct"],
        },
        modes=MODES_2D,  # confusion: lesion (2) labelled organ (1) in 60 % of its pixels
        default_modes=["ellipse", "morph", "symmetric", "pairflip", "confusion", "omission", "model"],
        epochs=60,
        methods=["CE", "Dice-CE", "GCE", "T-Loss", "ADELE", PAPER, "JCAS"],
    ),
    "demo3d": Dataset(
        make=_demo3d,
        configs=["train.json", "common_3d.json", "train_3d.json"],
        evaluate=["train.json", "common_3d.json", "train_3d.json", "evaluate.json"],
        overrides={
            "pixdim": [3.0, 3.0, 4.0],
            "patch_size": [32, 32, 16],
            "batch_size": 1,
            "num_samples": 2,
            # 8 x 8 x 4 grid nodes on the 32 x 32 x 16 patch: 256, as the 2D benchmark's 16 x 16 (a 16^3 grid made
            # a JCAS epoch 2.5 times a CE epoch, through DAR and the N^2 affinity pairs)
            "affinity_grid": [8, 8, 4],
            "tensorboard_images": 0,
        },
        modes={"morph": {"mode": "morph", "radius": (1, 2)}, "omission": {"mode": "omission", "rate": 0.3}},
        default_modes=["morph", "omission"],
        epochs=40,
        # the methods without correction, and Dice-CE as the best 2D peer (never behind JCAS in 2D, closest to it
        # under boundary noise); the paper's recipe on request (--methods), at the cost the 4 h budget allows
        methods=["CE", "Dice-CE", "JCAS"],
    ),
}
QUICK = {"dataset": "demo2d", "modes": ["confusion", "omission"], "methods": ["CE", "JCAS"], "seeds": [0], "epochs": 20}


def slug(text: str) -> str:
    """A file-name form of a method or tag name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip("_")


def method_overrides(method: str, epochs: int, variant: dict[str, Any]) -> dict[str, Any]:
    """The train.json overrides of ``method`` at ``epochs`` epochs (``warmup_epochs`` "all" is no correction stage,
    "3/8" three eighths of the budget), with a tuning variant's overrides on top."""
    out = {**METHODS[method], **variant}
    if out.get("warmup_epochs") == "all":
        out["warmup_epochs"] = epochs
    elif out.get("warmup_epochs") == "3/8":
        out["warmup_epochs"] = round(3 * epochs / 8)
    return {"max_epochs": epochs, **out}


@dataclass(frozen=True)
class Run:
    """One training run of the benchmark and where its result goes."""

    dataset: str
    mode: str  # "clean" for the clean-label runs
    method: str
    seed: int
    epochs: int
    variant: tuple[tuple[str, Any], ...] = ()
    tag: str = ""

    @property
    def name(self) -> str:
        return f"{self.method} [{self.tag}]" if self.tag else self.method

    def overrides(self) -> dict[str, Any]:
        data = DATASETS[self.dataset]
        return {**data.overrides, **method_overrides(self.method, self.epochs, dict(self.variant)), "seed": self.seed}

    def key(self) -> str:
        """What makes two runs the same: dataset, mode and the effective settings (the method's overrides on top of
        the train.json defaults it depends on, see :data:`SHARED_KEYS`), so a variant equal to another run is it."""
        overrides = self.overrides()
        loss_type = overrides.get("loss_type", train_defaults().get("loss_type"))
        correction = overrides.get("label_correction", loss_type == "adele")
        read = (
            set(SHARED_KEYS)
            | (JCAS_ONLY if loss_type == "jcas" else set())
            | (CORRECTION_ONLY if correction else set())
        )
        read |= {"gce_q"} if loss_type == "gce" else set()
        defaults = {k: v for k, v in train_defaults().items() if self.method == REFERENCE or k in read}
        # version 3: a method without the CALC loss counts its plateau stop from the end of early learning
        version = 2 if loss_type == "jcas" else 3
        content = {
            "dataset": self.dataset,
            "mode": self.mode,
            "settings": {**defaults, **overrides},
            "version": version,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def result_file(self, results: Path) -> Path:
        method = slug(self.method) + (f"__{slug(self.tag)}" if self.tag else "")
        return results / self.dataset / self.mode / method / f"seed{self.seed}.json"


def prepare_data(dataset: str, modes: Sequence[str], work: Path, noise_seed: int = 0) -> dict[str, Path]:
    """The clean datalist (mode "clean") and one noisy datalist per mode, made once in ``work/data``."""
    from scripts.make_noisy import make_noisy

    data = DATASETS[dataset]
    clean = data.make(work / "data" / dataset / "clean")
    lists = {"clean": clean}
    for mode in modes:
        out = work / "data" / dataset / mode
        if not (out / "datalist.json").is_file():
            make_noisy(clean, out, seed=noise_seed, overwrite=True, **data.modes[mode])
        lists[mode] = out / "datalist.json"
    return lists


def _run_overrides(run: Run, datalist: Path, run_dir: Path) -> dict[str, Any]:
    overrides = {
        **run.overrides(),
        "datalist": datalist,
        "dataset_dir": datalist.parent,
        "ckpt_dir": run_dir / "models",
        "output_dir": run_dir / "train",
        "progress_bar": False,
    }
    if run.mode != "clean":  # the training log and transitions.json report T_C's error against the true one
        overrides["reference_transition"] = datalist.parent / "noise_report.json"
    return overrides


def _eval_overrides(run: Run, datalist: Path, run_dir: Path, splits: Sequence[str]) -> list[dict[str, Any]]:
    """The evaluate overrides of the run's selected model (``models/model.pt``) on each of ``splits``, writing
    ``eval_val/`` and ``eval_test/``."""
    return [
        {
            **_run_overrides(run, datalist, run_dir),
            "output_dir": run_dir / f"eval_{_short(split)}",
            "test_datalist": f"$@scripts.data.load_datalist(@datalist, '{split}', require_label=True)",
        }
        for split in splits
    ]


def _short(split: str) -> str:
    return "val" if split == "validation" else split


def evaluate(run: Run, datalist: Path, run_dir: Path, splits: Sequence[str], threads: int | None) -> list[dict]:
    """Per-image scores of the run's selected model on each of ``splits``, evaluated one after the other in one
    process (``evaluate_<splits>.log``)."""
    evals = _eval_overrides(run, datalist, run_dir, splits)
    log = run_dir / f"evaluate_{'_'.join(map(_short, splits))}.log"
    bundle_run([DATASETS[run.dataset].evaluate] * len(evals), evals, log, threads)
    return _scores(run_dir, splits)


def _scores(run_dir: Path, splits: Sequence[str]) -> list[dict]:
    """The per-image scores the evaluations of ``run_dir`` wrote, one per split."""
    return [read_per_image(run_dir / f"eval_{_short(split)}") for split in splits]


def train_and_evaluate(run: Run, datalist: Path, work: Path, tune: bool, threads: int | None) -> dict[str, Any]:
    """Train one run, then evaluate its selected model on the validation split (and the test split unless
    ``tune``), in one process (one start-up: ``train.log``); return its result record.

    A run trained before (``trained.json`` with its key) is only evaluated (``evaluate_val[_test].log``).
    """
    run_dir = work / "runs" / run.result_file(Path()).with_suffix("")
    splits = ["validation"] if tune else ["validation", "test"]
    dataset = DATASETS[run.dataset]
    evals = _eval_overrides(run, datalist, run_dir, splits)
    train_s = finished_training(run_dir, run.key())
    if train_s is None:  # not trained yet (a run whose record was lost after training is only evaluated)
        log = run_dir / "train.log"
        start = time.time()
        try:
            configs = [dataset.configs] + [dataset.evaluate] * len(evals)
            seconds = bundle_run(configs, [_run_overrides(run, datalist, run_dir), *evals], log, threads)
        finally:  # a finished training is kept even if its evaluation failed
            done = finished_seconds(log, start)
            if done and (run_dir / "models" / "checkpoint_final.pt").is_file():
                (run_dir / "trained.json").write_text(json.dumps({"key": run.key(), "train_s": done[0]}))
        train_s, eval_s, eval_process = seconds[0], sum(seconds[1:]), "training"
        scores = _scores(run_dir, splits)
    else:
        start = time.perf_counter()
        scores = evaluate(run, datalist, run_dir, splits, threads)
        eval_s, eval_process = time.perf_counter() - start, "own"
    val_best, val_epoch = best_validation(run_dir / "train")
    result: dict[str, Any] = {
        "dataset": run.dataset,
        "mode": run.mode,
        "method": run.name,
        "seed": run.seed,
        "key": run.key(),
        "overrides": {k: cli_value(v) for k, v in run.overrides().items()},
        "code": code_identity(),
        "train_s": round(train_s, 1),
        "val_best": val_best,
        "val_epoch": val_epoch,
        "epochs": epochs_trained(run_dir / "train"),
        "eval_s": round(eval_s, 1),
        "eval_process": eval_process,
        "val_per_image": scores[0],
    }
    if not tune:
        result["test_per_image"] = scores[1]
    transitions = run_dir / "train" / "transitions.json"
    corrected = "CALC stage correction" in (run_dir / "train.log").read_text()  # the correction stage ran
    if transitions.is_file() and corrected:
        learned = json.loads(transitions.read_text())
        result["t_class"] = learned["T_C"]
        if "T_C_error" in learned and run.mode in CLASS_TRANSITION_MODES:
            result["t_class_error"] = learned["T_C_error"]
    return result


def finished_training(run_dir: Path, key: str) -> float | None:
    """The training time of a run trained to completion in ``run_dir`` with this key, else None."""
    record = run_dir / "trained.json"
    if not (record.is_file() and (run_dir / "models" / "checkpoint_final.pt").is_file()):
        return None
    content = json.loads(record.read_text())
    return content["train_s"] if content.get("key") == key else None


def per_image(result: dict[str, Any], split: str = "test") -> np.ndarray:
    """The (images, classes) Dice array of a result (NaN where a class is absent)."""
    rows = result[f"{split}_per_image"]["dice"]
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)


def load_results(results: Path, dataset: str | None = None) -> list[dict[str, Any]]:
    """Every result JSON under ``results`` (optionally of one dataset)."""
    root = results / dataset if dataset else results
    return [json.loads(p.read_text()) for p in sorted(root.rglob("seed*.json"))]


def is_current(result: dict[str, Any]) -> bool:
    """Whether a result's key is that of the same run today (False: made under settings or a stopping rule that
    have changed since; the next invocation retrains it)."""
    if result["method"] not in METHODS or result["dataset"] not in DATASETS:
        return False
    epochs = int(result["overrides"]["max_epochs"])
    return Run(result["dataset"], result["mode"], result["method"], result["seed"], epochs).key() == result["key"]


def compare(results: list[dict[str, Any]], dataset: str, mode: str, method: str, reference: str, split: str = "test"):
    """The paired difference ``method - reference`` on ``split`` (None when they share no seed)."""

    def arrays(name: str) -> dict[int, np.ndarray]:
        runs = [r for r in results if (r["dataset"], r["mode"], r["method"]) == (dataset, mode, name)]
        return {r["seed"]: per_image(r, split) for r in runs if f"{split}_per_image" in r}

    a, b = arrays(method), arrays(reference)
    if not set(a) & set(b):
        return None
    return paired_difference(a, b)


def _fmt(diff: PairedDifference | None) -> str:
    if diff is None:
        return "-"
    return f"{100 * diff.diff:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summary_tables(results: list[dict[str, Any]], dataset: str, reference: str, split: str = "test") -> list[str]:
    """Markdown: per mode, each method's mDice (mean over seeds) and its paired difference to ``reference``."""
    runs = [r for r in results if r["dataset"] == dataset and f"{split}_per_image" in r]
    modes = [m for m in DATASETS[dataset].modes if any(r["mode"] == m for r in runs)]
    order = [m for m in DATASETS[dataset].methods if any(r["method"] == m for r in runs)]
    order += sorted({r["method"] for r in runs} - set(order))

    def score(method: str, mode: str) -> list[float]:
        return [mdice(per_image(r, split)) for r in runs if (r["method"], r["mode"]) == (method, mode)]

    lines = ["| method | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for method in order:
        cells = []
        for mode in modes:
            values = score(method, mode)
            if not values:
                cells.append("-")
                continue
            cell = f"{100 * _mean(values):.1f}"
            if method != reference:
                diff = compare(runs, dataset, mode, method, reference, split)
                cell += f" ({_fmt(diff)})" if diff else ""
            cells.append(cell + ("" if len(values) > 1 else "¹"))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    ceiling = {m: _mean(score(m, "clean")) for m in CLEAN_METHODS if score(m, "clean")}
    if ceiling:
        best = max(ceiling, key=ceiling.get)
        ce_cells = []
        for mode in modes:
            noisy, ours = _mean(score("CE", mode)), _mean(score(reference, mode))
            gap = ceiling[best] - noisy
            ce_cells.append(
                f"{100 * (ours - noisy) / gap:.0f} %" if abs(gap) > 1e-6 and score(reference, mode) else "-"
            )
        lines.append(f"| gap closed by {reference} | " + " | ".join(ce_cells) + " |")
        lines += [
            "",
            "Clean-label ceiling (best clean-label run of "
            + ", ".join(CLEAN_METHODS)
            + f"): {best} {100 * ceiling[best]:.1f}"
            + "".join(f"; {m} {100 * v:.1f}" for m, v in ceiling.items() if m != best)
            + f". Gap closed = ({reference} − CE) / (ceiling − CE).",
        ]
    learners = [reference] + sorted({r["method"] for r in runs if "t_class_error" in r} - {reference, PAPER})
    for method in learners:  # the reference, and every tuning variant of it beside it
        errors = []
        for mode in modes:
            values = [
                r["t_class_error"] for r in runs if (r["method"], r["mode"]) == (method, mode) and "t_class_error" in r
            ]
            errors.append(f"{mode} {_mean(values):.3f}" if values else None)
        if any(errors):
            lines += [
                "",
                f"Learned T_C of {method}, mean row L1 to the true transition: "
                + ", ".join(e for e in errors if e)
                + ".",
            ]
    return lines


def verdict_lines(results: list[dict[str, Any]], dataset: str, reference: str, split: str = "test") -> list[str]:
    """Markdown lines: per mode, where ``reference`` stands against each other method (from the paired intervals)."""
    runs = [r for r in results if r["dataset"] == dataset and f"{split}_per_image" in r]
    lines = []
    for mode in DATASETS[dataset].modes:
        others = sorted({r["method"] for r in runs if r["mode"] == mode} - {reference})
        found = [(m, compare(runs, dataset, mode, m, reference, split)) for m in others]
        found = [(m, d) for m, d in found if d is not None]
        if not found:
            continue
        ahead = [m for m, d in found if verdict(d) == "behind"]  # the other method behind: the reference ahead
        behind = [m for m, d in found if verdict(d) == "ahead"]
        level = [m for m, d in found if verdict(d) == "level"]
        parts = [f"ahead of {', '.join(ahead)}" if ahead else "", f"level with {', '.join(level)}" if level else ""]
        parts.append(f"behind {', '.join(behind)}" if behind else "")
        lines.append(f"- {mode}: {reference} " + "; ".join(p for p in parts if p) + ".")
    return lines


def write_csvs(results: list[dict[str, Any]], out: Path, reference: str) -> None:
    """``robustness_runs.csv`` and ``robustness_paired.csv`` (see the module docstring)."""
    rows = []
    for r in sorted(results, key=lambda r: (r["dataset"], r["mode"], r["method"], r["seed"])):
        rows.append(
            {
                "dataset": r["dataset"],
                "mode": r["mode"],
                "method": r["method"],
                "seed": r["seed"],
                "n_val": len(r["val_per_image"]["dice"]),
                "n_test": len(r["test_per_image"]["dice"]) if "test_per_image" in r else "",
                "val_mdice": round(100 * mdice(per_image(r, "val")), 2),
                "mdice": round(100 * mdice(per_image(r, "test")), 2) if "test_per_image" in r else "",
                "t_class_error": round(r["t_class_error"], 4) if "t_class_error" in r else "",
                "val_epoch": r["val_epoch"],
                "epochs": r.get("epochs", ""),
                "train_s": r["train_s"],
                "commit": r["code"]["commit"][:10],
                "current": is_current(r),
            }
        )
    _write_csv(out / "robustness_runs.csv", rows)
    paired = []
    for dataset in sorted({r["dataset"] for r in results}):
        for mode in DATASETS[dataset].modes if dataset in DATASETS else []:
            methods = sorted(
                {r["method"] for r in results if (r["dataset"], r["mode"]) == (dataset, mode)} - {reference}
            )
            for method in methods:
                diff = compare(results, dataset, mode, method, reference)
                if diff is None:
                    continue
                paired.append(
                    {
                        "dataset": dataset,
                        "mode": mode,
                        "method": method,
                        "diff_vs_jcas": round(100 * diff.diff, 2),
                        "ci_low": round(100 * diff.low, 2),
                        "ci_high": round(100 * diff.high, 2),
                        "seeds": diff.seeds,
                        "n_test": diff.images,
                        "jcas": {"ahead": "behind", "behind": "ahead", "level": "level"}[verdict(diff)],
                    }
                )
    _write_csv(out / "robustness_paired.csv", paired)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def plot(results: list[dict[str, Any]], dataset: str, reference: str, path: Path) -> None:
    """Per mode, each method's difference to ``reference`` with its 95 % interval (points; right of 0: better)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = [r for r in results if r["dataset"] == dataset and "test_per_image" in r]
    modes = [m for m in DATASETS[dataset].modes if any(r["mode"] == m for r in runs)]
    methods = [m for m in DATASETS[dataset].methods if m != reference and any(r["method"] == m for r in runs)]
    fig = Figure(figsize=(3.0 * max(len(modes), 1), 0.45 * len(methods) + 1.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(modes), 1), sharey=True, squeeze=False)[0]
    for ax, mode in zip(axes, modes, strict=False):
        for k, method in enumerate(methods):
            diff = compare(runs, dataset, mode, method, reference)
            if diff is None:
                continue
            colour = {"ahead": "tab:red", "behind": "tab:green", "level": "tab:gray"}[verdict(diff)]
            ax.errorbar(
                100 * diff.diff,
                k,
                xerr=[[100 * (diff.diff - diff.low)], [100 * (diff.high - diff.diff)]],
                fmt="o",
                color=colour,
                capsize=3,
            )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(mode, fontsize=10)
        ax.set_xlabel(f"method − {reference} (mDice points)", fontsize=8)
    axes[0].set_yticks(range(len(methods)), methods)
    fig.suptitle(
        f"{dataset}: paired differences to {reference} with 95 % intervals (green: {reference} ahead)", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def report(results: list[dict[str, Any]], out: Path, command: str, reference: str = REFERENCE) -> str:
    """Write ``robustness.md``, the two CSVs and the plot from ``results``; return the Markdown."""
    final = [r for r in results if "test_per_image" in r and r["method"] in METHODS]
    present = {r["method"] for r in final}
    if reference not in present and PAPER in present:
        reference = PAPER  # before the default is benchmarked, the paper's method stands for it
    lines = [
        "# Robustness benchmark",
        "",
        f"Generated by `{command}` from the per-run results in `benchmarks/results/robustness/` "
        f"({len(final)} runs). Test split, clean labels; mDice in %. In brackets: the paired difference to "
        f"{reference} (method − {reference}, points) and its 95 % interval (bootstrap over the test images plus the "
        "spread over seeds, `benchmarks/paired_stats.py`); ¹: one seed only.",
        "",
        "Methods (train.json overrides; the peers train the same UNet without DAR, no correction stage; every "
        "method but the paper's recipe stops once validation has not improved for `early_stop_patience` (10) "
        "validations, within `max_epochs`, the paper's recipe trains the full budget; the model is the best on "
        "validation):",
        "",
    ]
    lines += [
        f"- {m}: " + (", ".join(f"`{k} {v}`" for k, v in o.items()) or "the bundle's defaults")
        for m, o in METHODS.items()
    ]
    lines += ["", "Noise modes (`scripts.make_noisy` arguments; the noise reports are in the run folders' data):", ""]
    lines += [f"- {m}: " + ", ".join(f"{k} {v}" for k, v in a.items()) for m, a in MODES_2D.items() if m != "cyclic50"]
    lines += [""]
    for dataset in [d for d in DATASETS if any(r["dataset"] == d for r in final)]:
        runs = [r for r in final if r["dataset"] == dataset]
        seeds = sorted({r["seed"] for r in runs})
        n_test = sorted({len(r["test_per_image"]["dice"]) for r in runs})
        n_val = sorted({len(r["val_per_image"]["dice"]) for r in runs})
        epochs = sorted({int(r["overrides"]["max_epochs"]) for r in runs})
        lines += [
            f"## {dataset}",
            "",
            f"Seeds {seeds}; {n_val} validation and {n_test} test images; {epochs} epochs; "
            f"training time {sum(r['train_s'] for r in runs) / 3600:.2f} h in all.",
            "",
            "Settings of every run: "
            + ", ".join(f"`{k} {cli_value(v)}`" for k, v in DATASETS[dataset].overrides.items())
            + "."
            + (
                " Noise modes: "
                + "; ".join(
                    f"{m}: " + ", ".join(f"{k} {v}" for k, v in a.items()) for m, a in DATASETS[dataset].modes.items()
                )
                + "."
                if DATASETS[dataset].modes is not MODES_2D
                else ""
            ),
            "",
        ]
        lines += summary_tables(final, dataset, reference)
        lines += ["", cost_line(runs, DATASETS[dataset].methods)]
        stale = [r for r in runs if not is_current(r)]
        if stale:
            names = ", ".join(sorted({r["method"] for r in stale}))
            lines += [
                "",
                f"**{len(stale)} of these {len(runs)} runs were made under settings that have changed since** "
                f"({names}; column `current` of `robustness_runs.csv`); the next `python -m benchmarks.robustness` "
                "retrains them.",
            ]
        lines += ["", f"Where {reference} stands (from the intervals):", ""] + verdict_lines(final, dataset, reference)
        lines += [
            "",
            f"![paired differences]({'robustness' if dataset == 'demo2d' else 'robustness_' + dataset}.png)",
            "",
        ]
        plot(
            final, dataset, reference, out / ("robustness.png" if dataset == "demo2d" else f"robustness_{dataset}.png")
        )
    write_csvs(final, out, reference)
    text = "\n".join(lines).rstrip() + "\n"
    (out / "robustness.md").write_text(text)
    return text


def cost_line(runs: list[dict[str, Any]], methods: Sequence[str]) -> str:
    """Markdown: each method's median training time per run (two runs at a time, one thread each) and its ratio to
    Dice-CE's, and the median time of a run's evaluations (validation and test) where recorded."""
    times = {m: [r["train_s"] for r in runs if r["method"] == m] for m in methods}
    medians = {m: statistics.median(v) for m, v in times.items() if v}
    base = medians.get("Dice-CE")
    parts = [f"{m} {v:.0f} s" + (f" ({v / base:.2f}×)" if base and m != "Dice-CE" else "") for m, v in medians.items()]
    line = "Median training time per run, two runs at a time, one thread each (ratio to Dice-CE): " + ", ".join(parts)
    per_epoch = {m: [r["train_s"] / r["epochs"] for r in runs if r["method"] == m and r.get("epochs")] for m in methods}
    per_epoch = {m: statistics.median(v) for m, v in per_epoch.items() if v}
    if per_epoch:
        base = per_epoch.get("Dice-CE")
        line += ". Per epoch, where the run recorded its epochs: " + ", ".join(
            f"{m} {v:.2f} s" + (f" ({v / base:.2f}×)" if base and m != "Dice-CE" else "") for m, v in per_epoch.items()
        )
    for where, text in (("training", "after the training, in its process"), ("own", "in a process of its own")):
        evals = [r["eval_s"] for r in runs if "eval_s" in r and r.get("eval_process", "own") == where]
        if evals:
            line += f". Evaluation (validation and test) {text}: median {statistics.median(evals):.0f} s per run"
    return line + "."


def tuning_report(results: list[dict[str, Any]], baseline: str, path: Path, command: str) -> str:
    """Markdown of a validation-only comparison: each method's val mDice per mode and its paired difference to
    ``baseline`` (same seeds, same validation images)."""
    lines = [
        f"# Tuning on the validation split: {path.stem}",
        "",
        f"`{command}`. Validation split only (the test split is never read); mDice in %, in brackets the paired "
        f"difference to {baseline} with its 95 % interval.",
        "",
    ]
    for dataset in sorted({r["dataset"] for r in results}):
        lines += [f"## {dataset}", ""]
        lines += summary_tables(results, dataset, baseline, split="val")
        lines += [""]
    text = "\n".join(lines).rstrip() + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    rows = [
        {
            "dataset": r["dataset"],
            "mode": r["mode"],
            "method": r["method"],
            "seed": r["seed"],
            "val_mdice": round(100 * mdice(per_image(r, "val")), 2),
            "val_epoch": r["val_epoch"],
            "t_class_error": round(r["t_class_error"], 4) if "t_class_error" in r else "",
            "train_s": r["train_s"],
        }
        for r in results
    ]
    _write_csv(path.with_suffix(".csv"), rows)
    return text


def plan(args: argparse.Namespace) -> list[Run]:
    """The runs of this invocation: clean-label runs first, then seed by seed, mode by mode."""
    variant = tuple(sorted(args.override.items()))
    runs = []
    for seed in args.seeds:
        if not args.tune and args.clean:
            runs += [Run(args.dataset, "clean", m, seed, args.epochs) for m in CLEAN_METHODS if m in args.methods]
        for mode in args.modes:
            for method in args.methods:
                runs.append(Run(args.dataset, mode, method, seed, args.epochs, variant, args.tag))
    return runs


def execute(runs: list[Run], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train what has no valid result yet (``--jobs`` at a time, one thread each); return every result."""
    work = Path(args.work)
    lists = prepare_data(args.dataset, sorted({r.mode for r in runs} - {"clean"}), work)
    done, todo = [], []
    today = code_identity()["digest"]
    for run in runs:
        path = run.result_file(Path(args.results))
        result = json.loads(path.read_text()) if path.is_file() else None
        usable = result is not None and result.get("key") == run.key() and (args.tune or "test_per_image" in result)
        if usable and args.rerun_stale and result["code"]["digest"] != today:
            usable = False
        (done if usable else todo).append((run, result) if usable else run)
    by_key, trained_twins = {}, {}  # a variant equal to another run is that run
    for result_path in sorted(Path(args.results).rglob("seed*.json")):
        twin = json.loads(result_path.read_text())
        by_key[twin["key"]] = twin
        twin_dir = work / "runs" / result_path.relative_to(args.results).with_suffix("")
        if finished_training(twin_dir, twin["key"]) is not None:  # e.g. a --tune run of what is now the default
            trained_twins.setdefault(twin["key"], (twin, twin_dir))
    if args.rerun_stale:  # a twin made by other code is as stale as the run itself
        by_key = {k: t for k, t in by_key.items() if t["code"]["digest"] == today}
        trained_twins = {k: t for k, t in trained_twins.items() if t[0]["code"]["digest"] == today}
    for run in list(todo):
        twin = by_key.get(run.key())
        if twin is not None and (args.tune or "test_per_image" in twin):
            todo.remove(run)
            done.append((run, {**twin, "method": run.name}))
            path = run.result_file(Path(args.results))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**twin, "method": run.name, "same_as": twin["method"]}, indent=1) + "\n")
    print(f"{len(done)} runs reused, {len(todo)} to train", flush=True)
    results = [r for _, r in done]

    def one(run: Run) -> dict[str, Any]:
        threads = 1 if args.jobs > 1 else None
        path = run.result_file(Path(args.results))
        old = json.loads(path.read_text()) if path.is_file() else {}
        run_dir = work / "runs" / run.result_file(Path()).with_suffix("")
        if old.get("key") == run.key() and (run_dir / "models" / "model.pt").is_file():  # a --tune run: test it
            result = {**old, "test_per_image": evaluate(run, lists[run.mode], run_dir, ["test"], threads)[0]}
        elif run.key() in trained_twins:  # trained under another name (a tuning variant): test that model
            twin, twin_dir = trained_twins[run.key()]
            test = evaluate(run, lists[run.mode], twin_dir, ["test"], threads)[0]
            result = {**twin, "method": run.name, "same_as": twin["method"], "test_per_image": test}
        else:
            result = train_and_evaluate(run, lists[run.mode], work, args.tune, threads)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(path)
        return result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(one, run): run for run in todo}
        for future in as_completed(futures):
            run = futures[future]
            try:
                result = future.result()
            except Exception as err:  # one failed run does not stop the others
                print(f"FAILED {run}: {type(err).__name__}: {err}", flush=True)
                continue
            results.append(result)
            test = f", test mDice {100 * mdice(per_image(result, 'test')):.1f}" if "test_per_image" in result else ""
            error = f", T_C error {result['t_class_error']:.3f}" if "t_class_error" in result else ""
            print(
                f"{run.dataset} | {run.mode:>9} | {run.name:<24} | seed {run.seed} | val mDice "
                f"{100 * mdice(per_image(result, 'val')):.1f}{test}{error} | {result['train_s']:.0f} s",
                flush=True,
            )
    return results


def verify(results: list[dict[str, Any]], count: int, args: argparse.Namespace) -> None:
    """Retrain ``count`` random finished runs of this invocation and report whether their validation scores
    reproduce exactly."""
    runs = {run.key(): run for run in plan(args)}
    chosen = random.Random(0).sample([r for r in results if r["key"] in runs], min(count, len(results)))
    for old in chosen:
        run = runs[old["key"]]
        lists = prepare_data(run.dataset, [] if run.mode == "clean" else [run.mode], Path(args.work))
        new = train_and_evaluate(run, lists[run.mode], Path(args.work) / "verify", tune=True, threads=None)
        same = new["val_per_image"]["dice"] == old["val_per_image"]["dice"]
        print(
            f"verify {run.dataset} {run.mode} {run.name} seed {run.seed}: "
            f"{'reproduced bit for bit' if same else 'DIFFERS'} (code {old['code']['commit'][:10]} -> "
            f"{new['code']['commit'][:10]})",
            flush=True,
        )


def rekey(results_dir: Path, methods: Sequence[str], tag: str = "", variant: dict[str, Any] | None = None) -> int:
    """Give the results of ``methods`` made before a change of :meth:`Run.key` that does not change what their runs
    do (a setting added at the value that reproduces the old behaviour, or pinned: :data:`NEW_PINS`), the key of
    the same run today, when their recorded overrides are the run's (pins aside); returns how many. A result made
    under a stopping rule or default that has changed since has the same overrides too, so the methods are named:
    rekeying every method would pass such runs off as current. With ``tag``, the results of that tuning variant
    (``variant``: its overrides, as ``--override`` gives them) instead of the methods' own."""
    count = 0
    names = {f"{m} [{tag}]" if tag else m: m for m in methods if m in METHODS}
    for path in sorted(results_dir.rglob("seed*.json")):
        result = json.loads(path.read_text())
        if result["method"] not in names:
            continue
        epochs = int(result["overrides"]["max_epochs"])
        pairs = tuple(sorted((variant or {}).items()))
        run = Run(result["dataset"], result["mode"], names[result["method"]], result["seed"], epochs, pairs, tag)
        now = {k: cli_value(v) for k, v in run.overrides().items() if k not in NEW_PINS}
        then = {k: v for k, v in result["overrides"].items() if k not in NEW_PINS}
        if now == then and result["key"] != run.key():
            result["key"] = run.key()
            path.write_text(json.dumps(result, indent=1) + "\n")
            count += 1
    return count


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 modes, CE and JCAS, seed 0, 20 epochs")
    parser.add_argument("--dataset", choices=list(DATASETS), default="demo2d")
    parser.add_argument("--modes", nargs="+", help="noise modes (default: the dataset's; cyclic50 is a stress mode)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help="methods (default: the dataset's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="max_epochs of every run (default: the dataset's)")
    parser.add_argument("--no_clean", dest="clean", action="store_false", help="skip the clean-label runs")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each when more than 1)")
    parser.add_argument("--tune", action="store_true", help="validation only: train, never evaluate on test")
    parser.add_argument("--tag", default="", help="a tuning variant's name (its runs are kept apart)")
    parser.add_argument(
        "--baseline", nargs="+", default=[REFERENCE], help="--tune: the methods the variant is compared with"
    )
    parser.add_argument(
        "--versus", action="store_true", help="--tune: differences to the variant (default: to the first baseline)"
    )
    parser.add_argument("--override", nargs="*", default=[], help="more train.json overrides, key=value (JSON value)")
    parser.add_argument("--report", action="store_true", help="only regenerate the tables from the results")
    parser.add_argument("--verify", type=int, default=0, help="retrain N finished runs and check they reproduce")
    parser.add_argument("--rerun_stale", action="store_true", help="retrain the runs made by other code")
    parser.add_argument(
        "--rekey", action="store_true", help="update the keys of --methods' results made before a neutral key change"
    )
    parser.add_argument("--work", default=str(BUNDLE_ROOT / "runs" / "robustness"), help="data, models, logs")
    parser.add_argument("--results", default=str(RESULTS / "robustness"), help="per-run result files")
    parser.add_argument("--out", default=str(BUNDLE_ROOT / "docs" / "benchmarks"), help="tables and plots")
    args = parser.parse_args(argv)
    if args.quick:
        args.dataset, args.modes, args.methods = QUICK["dataset"], QUICK["modes"], QUICK["methods"]
        args.seeds, args.epochs = QUICK["seeds"], QUICK["epochs"]
        args.results = str(Path(args.work) / "quick_results")
        args.clean = False
    data = DATASETS[args.dataset]
    args.modes = args.modes or data.default_modes
    explicit_methods = args.methods is not None
    args.methods = args.methods or data.methods
    args.epochs = args.epochs or data.epochs
    unknown = [m for m in args.modes if m not in data.modes]
    if unknown:
        parser.error(f"--modes {unknown}: {args.dataset} has {list(data.modes)}")
    parsed = {}
    for item in args.override:
        key, _, value = item.partition("=")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    args.override = parsed
    if args.rekey and not explicit_methods:
        parser.error("--rekey needs --methods: the methods whose key changed without a change of what they do")
    if args.tune:
        if not args.tag and args.override:
            parser.error("--tune with --override needs a --tag naming the variant")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(BUNDLE_ROOT))
    command = shlex.join(["python", "-m", "benchmarks.robustness", *(argv if argv is not None else sys.argv[1:])])
    out = Path(args.out)
    if args.rekey:
        print(f"{rekey(Path(args.results), args.methods, args.tag or '', args.override)} results rekeyed")
        return
    if args.report:
        print(report(load_results(Path(args.results)), out, command))
        return
    runs = plan(args)
    results = execute(runs, args)
    if args.verify:
        verify(results, args.verify, args)
    if args.tune:
        tag = args.tag or "defaults"
        path = out / "tuning" / f"{args.dataset}_{slug(tag)}.md"
        baseline = [r for r in load_results(Path(args.results), args.dataset) if r["method"] in args.baseline]
        keep = results + [r for r in baseline if r["mode"] in args.modes and r["seed"] in args.seeds]
        reference = runs[0].name if args.versus else args.baseline[0]
        if args.versus:
            path = path.with_name(f"{path.stem}_versus.md")
        print(tuning_report(keep, reference, path, command))
    elif args.quick:
        print(report(results, Path(args.work) / "quick", command))
    else:
        print(report(load_results(Path(args.results)), out, command))


if __name__ == "__main__":
    main()
