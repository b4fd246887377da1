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
"""Running the bundle the way a user does (``python -m monai.bundle run`` with overrides, in a subprocess) and
reading back what it wrote: the learning curve, the per-image evaluation CSV, the learned transitions."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLE_ROOT",
    "best_validation",
    "bundle_command",
    "bundle_run",
    "cli_value",
    "code_identity",
    "finished_seconds",
    "read_per_image",
]

BUNDLE_ROOT = Path(__file__).resolve().parents[1]


def cli_value(value: Any) -> str:
    """A value as python-fire (MONAI's command line) reads it back: Python literals, so ``False``, not ``false``."""
    if isinstance(value, (str, Path)):
        return str(value)
    return repr(list(value) if isinstance(value, tuple) else value)


def bundle_run(
    configs: list[str] | list[list[str]],
    overrides: dict[str, Any] | list[dict[str, Any]],
    log: Path,
    threads: int | None = None,
) -> list[float]:
    """``python -m monai.bundle run`` on the bundle's ``configs`` (names in ``configs/``) with ``overrides``.

    Args:
        configs: config file names, later ones overriding earlier ones; with a list of ``overrides``, either one
            list for every run or one list per run (a training run, then evaluations of its model).
        overrides: top-level keys and values; a list of such dicts runs the configs once per dict, one after the
            other in one process (``python -m benchmarks.bundle_runs``, which calls ``monai.bundle.run`` with the
            values python-fire would have parsed from the command line), so that training a model and evaluating
            it pay for one start-up (importing MONAI takes 25 to 45 s here).
            A value None (a setting turned off, e.g. ``early_stop_patience``) goes in a config overlay instead of
            the command line, which would drop it (:func:`_null_overlay`).
        log: the run's output goes there.
        threads: OMP/MKL threads of the run (None: inherited).

    Returns:
        The wall-clock seconds of each run; the first includes the process's start-up.

    Raises:
        RuntimeError: the run failed, naming the log and the command (the seconds of the runs that finished are
            in ``<log>.times.json``, see :func:`finished_seconds`).
    """
    cmd = bundle_command(configs, overrides, log)
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    times = _times_file(log)
    times.unlink(missing_ok=True)
    start = time.time()
    with open(log, "w") as f:
        done = subprocess.run(cmd, cwd=BUNDLE_ROOT, stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    if isinstance(overrides, dict) and done.returncode == 0:  # a list of runs writes its own times
        times.write_text(json.dumps([time.time()]))
    seconds = finished_seconds(log, start)
    if done.returncode:
        raise RuntimeError(f"bundle run failed (exit {done.returncode}), see {log}: {' '.join(cmd)}")
    return seconds


def _times_file(log: Path) -> Path:
    return log.with_suffix(".times.json")


def finished_seconds(log: Path, start: float) -> list[float]:
    """The wall-clock seconds of each run of :func:`bundle_run` that finished, from the end times (seconds since
    the epoch) its process wrote to ``<log>.times.json``, the first counted from ``start``."""
    times = _times_file(log)
    ends = json.loads(times.read_text()) if times.is_file() else []
    begins = [start, *ends][: len(ends)]
    return [round(end - begin, 1) for begin, end in zip(begins, ends, strict=True)]


def bundle_command(
    configs: list[str] | list[list[str]], overrides: dict[str, Any] | list[dict[str, Any]], log: Path
) -> list[str]:
    """The command of :func:`bundle_run` (writing, beside ``log``, the files it reads: the overlay of the None
    values, and for a list of runs their settings)."""
    runs = overrides if isinstance(overrides, list) else [overrides]
    per_run = bool(configs) and isinstance(configs[0], list)
    if per_run and len(configs) != len(runs):
        raise ValueError(f"expected one config list per run, got {len(configs)} for {len(runs)} runs")
    logging_file = str(BUNDLE_ROOT / "configs" / "logging.conf")
    log.parent.mkdir(parents=True, exist_ok=True)
    nulls = _null_overlay(runs, log)

    def config_file(names: list[str]) -> str:
        files = [str(BUNDLE_ROOT / "configs" / name) for name in names]
        files += [] if nulls is None else [str(nulls)]
        return json.dumps(files) if len(files) > 1 else files[0]

    if isinstance(overrides, dict):
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file(configs)]
        cmd += ["--logging_file", logging_file, "--bundle_root", str(BUNDLE_ROOT)]
        for key, value in overrides.items():
            if value is not None:
                cmd += [f"--{key}", cli_value(value)]
        return cmd
    spec = []
    for i, run in enumerate(runs):
        common = {
            "config_file": config_file(configs[i] if per_run else configs),
            "logging_file": logging_file,
            "bundle_root": str(BUNDLE_ROOT),
        }
        spec.append({**common, **{k: cli_value(v) for k, v in run.items() if v is not None}})
    spec_file = log.with_suffix(".runs.json")
    spec_file.write_text(json.dumps(spec, indent=1))
    return [sys.executable, "-m", "benchmarks.bundle_runs", str(spec_file)]


def _null_overlay(overrides: list[dict[str, Any]], log: Path) -> Path | None:
    """The overrides whose value is None, written as a config overlay beside ``log`` (None if there are none).

    MONAI's ``run`` drops every override whose value is None (``update_kwargs(ignore_none=True)``), so
    ``--early_stop_patience None`` on its command line leaves the config's value in place; a ``null`` in a config
    file listed last does override it. Every dict of ``overrides`` must agree on these keys.
    """
    keys = [sorted(k for k, v in o.items() if v is None) for o in overrides]
    if any(k != keys[0] for k in keys):
        raise ValueError(f"the runs of one process must share their None-valued overrides, got {keys}")
    if not keys[0]:
        return None
    path = log.with_suffix(".nulls.json")
    path.write_text(json.dumps(dict.fromkeys(keys[0]), indent=4) + "\n")
    return path


def best_validation(output_dir: Path, metric: str = "val_mean_dice") -> tuple[float, int]:
    """The best validation metric of a training run and its epoch, from ``learning_curve.json`` (the first epoch
    among equals, as MONAI's key-metric checkpoint keeps the first)."""
    history = json.loads((output_dir / "learning_curve.json").read_text())
    scored = [(r[metric], r["epoch"]) for r in history if metric in r]
    if not scored:
        raise RuntimeError(f"{output_dir / 'learning_curve.json'}: no '{metric}' recorded")
    best = max(value for value, _ in scored)
    return float(best), min(epoch for value, epoch in scored if value == best)


def epochs_trained(output_dir: Path) -> int:
    """The last epoch a training run recorded in ``learning_curve.json`` (where its early stop ended it)."""
    history = json.loads((output_dir / "learning_curve.json").read_text())
    return max(r["epoch"] for r in history)


def read_per_image(eval_dir: Path, metric: str = "val_mean_dice") -> dict[str, Any]:
    """The per-image, per-class scores of an evaluation run (``<metric>_raw.csv``): ``files`` (the image names),
    ``classes`` (the foreground class names) and ``dice``, one row per image (None where the class is absent from
    the image's ground truth), rounded to 6 decimals."""
    with open(eval_dir / f"{metric}_raw.csv") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise RuntimeError(f"{eval_dir / (metric + '_raw.csv')}: no image")
    classes = [c for c in rows[0] if c not in ("filename", "mean")]

    def value(text: str) -> float | None:
        number = float(text)
        return None if math.isnan(number) else round(number, 6)

    return {
        "files": [Path(r["filename"]).name for r in rows],
        "classes": classes,
        "dice": [[value(r[c]) for c in classes] for r in rows],
    }


def _executed_text(path: Path) -> str:
    """What ``path`` executes: a JSON file's parsed value, a Python file's syntax tree without docstrings."""
    if path.suffix == ".json":
        return json.dumps(json.loads(path.read_text()), sort_keys=True)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, documented) and ast.get_docstring(node, clean=False) is not None:
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_identity(root: Path = BUNDLE_ROOT) -> dict[str, Any]:
    """The code a run executes: the git commit (and whether the tree had uncommitted changes) and a SHA-256 of the
    configs and the bundle's scripts as :func:`_executed_text` (docstrings, comments and layout do not count)."""
    digest = hashlib.sha256()
    for path in sorted((root / "configs").glob("*.json")) + sorted((root / "scripts").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + _executed_text(path).encode())

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    dirty = bool(git("status", "--porcelain", "--", "configs", "scripts"))
    return {"commit": git("rev-parse", "HEAD"), "dirty": dirty, "digest": digest.hexdigest()[:16]}


def run_many(spec_file: Path) -> None:
    """Each entry of the JSON list in ``spec_file`` (command-line strings by key, as :func:`bundle_run` writes them)
    through ``monai.bundle.run``, in order, each value parsed as python-fire parses a command-line argument; after
    each, its end time is appended to the list in ``<spec_file without .runs.json>.times.json``."""
    from fire.parser import DefaultParseValue
    from monai.bundle import run

    spec_file = Path(spec_file)
    times = spec_file.with_name(spec_file.name.removesuffix(".runs.json") + ".times.json")
    ends: list[float] = []
    for entry in json.loads(spec_file.read_text()):
        run(**{key: DefaultParseValue(value) for key, value in entry.items()})
        ends.append(time.time())
        times.write_text(json.dumps(ends))


if __name__ == "__main__":
    run_many(Path(sys.argv[1]))
