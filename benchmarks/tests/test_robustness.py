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
"""``benchmarks/robustness.py``: run identity, the methods' settings, the tables and CSVs, and one real tiny run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scripts.config_check import check_config

from benchmarks import robustness
from benchmarks.robustness import DATASETS, METHODS, PAPER, Dataset, Run, method_overrides, report
from tests.test_config_check import SHIPPED


def test_budgets_of_the_methods():
    assert method_overrides("CE", 60, {})["warmup_epochs"] == 60  # no correction stage
    assert "early_stop_patience" not in method_overrides("CE", 60, {})  # the default's plateau stop, as JCAS
    assert method_overrides(PAPER, 60, {})["early_stop_patience"] is None  # the paper's fixed budget
    assert method_overrides(PAPER, 60, {})["warmup_epochs"] == 22  # 3/8 of the budget
    assert method_overrides("JCAS", 80, {"lambda_dice": 2.0}) == {"max_epochs": 80, "lambda_dice": 2.0}  # defaults


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_passes_the_start_up_check(tmp_path, dataset, method):
    overrides = Run(dataset, "morph", method, 0, DATASETS[dataset].epochs).overrides()
    merged = dict(SHIPPED)
    for name in DATASETS[dataset].configs[1:]:  # the 3D overlays' values
        overlay = json.loads((robustness.BUNDLE_ROOT / "configs" / name).read_text())
        merged.update({k: v for k, v in overlay.items() if k in SHIPPED and not str(v).startswith(("$", "@"))})
    merged.update({k: v for k, v in overrides.items() if k in SHIPPED})
    if "patch_size" in overrides:
        merged["image_size"] = overrides["patch_size"]
    folders = {"outputs": {"output_dir": tmp_path / "eval"}, "inputs": {"dataset_dir": tmp_path / "data"}}
    check_config(**merged, **folders)


def test_a_changed_default_retrains_only_the_methods_that_read_it(monkeypatch):
    """A run's identity holds the train.json defaults it depends on: a JCAS-only default (lambda_dice) changes the
    default method's key, not a peer's or the pinned paper recipe's; the learning rate changes no method that sets
    its own; the correction threshold changes the methods that correct labels."""
    runs = {m: Run("demo2d", "morph", m, 0, 60) for m in ("JCAS", PAPER, "CE", "ADELE")}
    before = {m: r.key() for m, r in runs.items()}
    defaults = robustness.train_defaults()
    monkeypatch.setattr(robustness, "train_defaults", lambda: {**defaults, "lambda_dice": 3.0})
    after = {m: r.key() for m, r in runs.items()}
    assert after["JCAS"] != before["JCAS"]
    assert {m: after[m] for m in (PAPER, "CE", "ADELE")} == {m: before[m] for m in (PAPER, "CE", "ADELE")}
    monkeypatch.setattr(robustness, "train_defaults", lambda: {**defaults, "early_stop_patience": 20})
    stopped = {m: r.key() for m, r in runs.items()}
    assert all(stopped[m] != before[m] for m in ("JCAS", "CE", "ADELE")) and stopped[PAPER] == before[PAPER]
    monkeypatch.setattr(robustness, "train_defaults", lambda: {**defaults, "correction_threshold": 0.9})
    changed = {m for m, r in runs.items() if r.key() != before[m]}
    assert changed == {"JCAS", "ADELE"}  # the default reads every default; ADELE its correction threshold
    monkeypatch.setattr(robustness, "train_defaults", lambda: {**defaults, "a_new_key": 1})
    assert {m for m, r in runs.items() if r.key() != before[m]} == {"JCAS"}  # a new key retrains the default only


def fake(method: str, mode: str, seed: int, scores: list[list[float]], t_error: float | None = None) -> dict:
    result = {
        "dataset": "demo2d",
        "mode": mode,
        "method": method,
        "seed": seed,
        "key": "k",
        "overrides": {"max_epochs": "60"},
        "code": {"commit": "abc1234567", "dirty": False, "digest": "d"},
        "train_s": 100.0,
        "val_best": 0.5,
        "val_epoch": 30,
        "val_per_image": {"files": ["a", "b"], "classes": ["x", "y"], "dice": scores},
        "test_per_image": {"files": ["a", "b"], "classes": ["x", "y"], "dice": scores},
    }
    if t_error is not None:
        result["t_class_error"] = t_error
    return result


def test_report_tables_and_csvs(tmp_path):
    """JCAS 0.1 above CE on every image and seed: CE's difference is -10 points with a zero-width interval, so JCAS
    is ahead; Dice-CE equals JCAS (level); the ceiling is the best clean run (Dice-CE 0.9)."""
    results = []
    for seed in (0, 1):
        results.append(fake("JCAS", "morph", seed, [[0.7, 0.6], [0.8, None]], t_error=0.05))
        results.append(fake("CE", "morph", seed, [[0.6, 0.5], [0.7, None]]))
        results.append(fake("Dice-CE", "morph", seed, [[0.7, 0.6], [0.8, None]]))
        results.append(fake("CE", "clean", seed, [[0.8, 0.8], [0.8, None]]))
        results.append(fake("Dice-CE", "clean", seed, [[0.9, 0.9], [0.9, None]]))
    text = report(results, tmp_path, "python -m benchmarks.robustness --report")
    assert "| JCAS | 67.5 |" in text  # x: (0.7 + 0.8) / 2, y: 0.6 -> 0.675
    assert "| CE | 57.5 (-10.0 [-10.0, -10.0]) |" in text
    assert "| gap closed by JCAS | 31 % |" in text  # (67.5 - 57.5) / (90 - 57.5)
    assert "Dice-CE 90.0; CE 80.0" in text and "morph 0.050" in text
    assert "- morph: JCAS ahead of CE; level with Dice-CE." in text
    with open(tmp_path / "robustness_paired.csv") as f:
        paired = {row["method"]: row for row in csv.DictReader(f) if row["mode"] == "morph"}
    assert paired["CE"]["diff_vs_jcas"] == "-10.0" and paired["CE"]["jcas"] == "ahead"
    assert paired["Dice-CE"]["ci_low"] == "0.0" and paired["Dice-CE"]["jcas"] == "level"
    with open(tmp_path / "robustness_runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert {"dataset", "mode", "method", "seed", "n_val", "n_test", "val_mdice", "mdice", "t_class_error"} <= set(
        runs[0]
    )
    assert len(runs) == 10 and (tmp_path / "robustness.png").is_file()


@pytest.mark.slow
def test_a_real_run_records_what_the_tables_need(tmp_path, monkeypatch):
    """One tiny JCAS run through the bundle's configs: per-image validation and test Dice, the learned T_C and its
    error, the code identity; a second invocation reuses it."""
    from scripts.demo_data import ensure_demo_dataset

    tiny = Dataset(
        make=lambda folder: Path(
            ensure_demo_dataset(folder, num_train=4, num_val=2, num_test=3, size=(64, 80), noise=None)
        ),
        configs=["train.json"],
        evaluate=["train.json", "evaluate.json"],
        overrides={
            "image_size": [48, 32],
            "unet_channels": [8, 16, 32],
            "unet_strides": [2, 2],
            "feature_channels": 8,
            "embedding_channels": 8,
            "affinity_grid": 8,
            "tensorboard_images": 0,
        },
        modes={"confusion": robustness.MODES_2D["confusion"]},
        default_modes=["confusion"],
        epochs=2,
        methods=["JCAS"],
    )
    monkeypatch.setitem(DATASETS, "tiny", tiny)
    monkeypatch.setitem(METHODS, "JCAS", {"warmup_epochs": 1})
    argv = ["--dataset", "tiny", "--seeds", "0", "--no_clean", "--work", str(tmp_path / "work")]
    argv += ["--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")]
    robustness.main(argv)
    result = json.loads((tmp_path / "results" / "tiny" / "confusion" / "JCAS" / "seed0.json").read_text())
    assert len(result["val_per_image"]["dice"]) == 2 and len(result["test_per_image"]["dice"]) == 3
    assert result["test_per_image"]["classes"] == ["shaft", "wrist", "clasper"]
    assert np.asarray(result["t_class"]).shape == (4, 4) and 0 <= result["t_class_error"] <= 2
    assert len(result["code"]["commit"]) == 40 and result["overrides"]["max_epochs"] == "2"
    run_dir = tmp_path / "work" / "runs" / "tiny" / "confusion" / "JCAS" / "seed0"
    ends = json.loads((run_dir / "train.times.json").read_text())  # trained and evaluated in one process
    assert len(ends) == 3 and not list(run_dir.glob("evaluate*.log")) and result["eval_process"] == "training"
    assert result["train_s"] > 0 and 0 < result["eval_s"] <= ends[2] - ends[0] + 0.1
    mtime = (tmp_path / "results" / "tiny" / "confusion" / "JCAS" / "seed0.json").stat().st_mtime
    robustness.main(argv)  # nothing to train: the result is reused
    assert (tmp_path / "results" / "tiny" / "confusion" / "JCAS" / "seed0.json").stat().st_mtime == mtime


@pytest.mark.slow
def test_the_default_reuses_a_tuning_run_of_the_same_settings(tmp_path, monkeypatch):
    """A --tune variant that later becomes the default is not trained again: the default's run tests the variant's
    model (its validation scores and training time are the variant's) and trains nothing of its own."""
    from scripts.demo_data import ensure_demo_dataset

    tiny = Dataset(
        make=lambda folder: Path(
            ensure_demo_dataset(folder, num_train=4, num_val=2, num_test=3, size=(64, 80), noise=None)
        ),
        configs=["train.json"],
        evaluate=["train.json", "evaluate.json"],
        overrides={
            "image_size": [48, 32],
            "unet_channels": [8, 16, 32],
            "unet_strides": [2, 2],
            "feature_channels": 8,
            "embedding_channels": 8,
            "affinity_grid": 8,
            "tensorboard_images": 0,
        },
        modes={"confusion": robustness.MODES_2D["confusion"]},
        default_modes=["confusion"],
        epochs=2,
        methods=["JCAS"],
    )
    monkeypatch.setitem(DATASETS, "tiny", tiny)
    common = ["--dataset", "tiny", "--seeds", "0", "--no_clean", "--work", str(tmp_path / "work")]
    common += ["--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")]
    robustness.main([*common, "--tune", "--tag", "twin", "--override", "warmup_epochs=1"])
    twin = json.loads((tmp_path / "results" / "tiny" / "confusion" / "JCAS__twin" / "seed0.json").read_text())
    assert "test_per_image" not in twin  # tuning never reads the test split
    monkeypatch.setitem(METHODS, "JCAS", {"warmup_epochs": 1})  # the variant has become the default
    robustness.main(common)
    result = json.loads((tmp_path / "results" / "tiny" / "confusion" / "JCAS" / "seed0.json").read_text())
    assert result["key"] == twin["key"] and result["same_as"] == "JCAS [twin]"
    assert result["val_per_image"] == twin["val_per_image"] and result["train_s"] == twin["train_s"]
    assert len(result["test_per_image"]["dice"]) == 3
    assert not (tmp_path / "work" / "runs" / "tiny" / "confusion" / "JCAS").exists()  # nothing trained for it

    # --rerun_stale: a twin made by other code is stale too, so the default trains a run of its own
    for path in (tmp_path / "results").rglob("seed0.json"):
        made = json.loads(path.read_text())
        path.write_text(json.dumps({**made, "code": {**made["code"], "digest": "other code"}}))
    robustness.main([*common, "--rerun_stale"])
    retrained = json.loads((tmp_path / "results" / "tiny" / "confusion" / "JCAS" / "seed0.json").read_text())
    assert "same_as" not in retrained and retrained["code"]["digest"] == robustness.code_identity()["digest"]
    assert (tmp_path / "work" / "runs" / "tiny" / "confusion" / "JCAS" / "seed0" / "models" / "model.pt").is_file()


def test_rekey_touches_only_the_named_methods_or_variant(tmp_path):
    """--rekey gives the named methods' results (or one tuning variant's) today's key where their recorded
    overrides are today's; another method's result with the same overrides (made under an old stopping rule, say)
    keeps its stale key."""

    def write(method: str, folder: str, run: Run) -> Path:
        path = tmp_path / "demo2d" / "confusion" / folder / "seed0.json"
        path.parent.mkdir(parents=True)
        overrides = {k: robustness.cli_value(v) for k, v in run.overrides().items()}
        record = {"dataset": "demo2d", "mode": "confusion", "method": method, "seed": 0, "key": "old"}
        path.write_text(json.dumps({**record, "overrides": overrides}))
        return path

    jcas = write("JCAS", "JCAS", Run("demo2d", "confusion", "JCAS", 0, 60))
    ce = write("CE", "CE", Run("demo2d", "confusion", "CE", 0, 60))
    variant = Run("demo2d", "confusion", "JCAS", 0, 60, (("lambda_volume", 0.01),), "v")
    tuned = write("JCAS [v]", "JCAS__v", variant)
    assert robustness.rekey(tmp_path, ["JCAS"]) == 1
    assert json.loads(jcas.read_text())["key"] == Run("demo2d", "confusion", "JCAS", 0, 60).key()
    assert json.loads(ce.read_text())["key"] == json.loads(tuned.read_text())["key"] == "old"
    assert robustness.rekey(tmp_path, ["JCAS"], "v", {"lambda_volume": 0.02}) == 0  # not that variant's settings
    assert robustness.rekey(tmp_path, ["JCAS"], "v", {"lambda_volume": 0.01}) == 1
    assert json.loads(tuned.read_text())["key"] == variant.key()
    with pytest.raises(SystemExit):
        robustness.parse_args(["--rekey"])


def test_cost_line_per_run_and_per_epoch_medians() -> None:
    """Medians of train_s, and of train_s / epochs over the runs that recorded their epochs, with ratios to
    Dice-CE: JCAS 300 s in 60 epochs (5 s) against Dice-CE 100 s in 50 (2 s) is 3.00x per run, 2.50x per epoch."""
    runs = [
        {"method": "Dice-CE", "train_s": 100.0, "epochs": 50},
        {"method": "JCAS", "train_s": 300.0, "epochs": 60},
        {"method": "CE", "train_s": 90.0},
    ]
    line = robustness.cost_line(runs, ["CE", "Dice-CE", "JCAS"])
    assert "CE 90 s (0.90×), Dice-CE 100 s, JCAS 300 s (3.00×)" in line
    assert "Per epoch, where the run recorded its epochs: Dice-CE 2.00 s, JCAS 5.00 s (2.50×)" in line
