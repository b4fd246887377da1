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
from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.benchmark_noise import (
    CLEAN,
    NOISY_CE,
    PEERS,
    TRUSTED,
    code_digest,
    parse_args,
    peer_check,
    read_scores,
    run_one,
    run_plan,
    summarise,
    target_check,
)
from scripts.demo_data import make_demo_dataset


def result(method: str, mode: str, seed: int, dice: float, jaccard: float) -> dict:
    return {"method": method, "mode": mode, "seed": seed, "mdice": dice, "mjaccard": jaccard}


def test_code_digest_ignores_documentation_not_code(tmp_path):
    """Finished runs stay valid through docstring, comment, layout and JSON-whitespace edits, not through code edits."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "scripts").mkdir()
    train, evaluate = tmp_path / "configs" / "train.json", tmp_path / "configs" / "evaluate.json"
    module, benchmark = tmp_path / "scripts" / "losses.py", tmp_path / "scripts" / "benchmark_x.py"
    evaluate.write_text("{}")
    benchmark.write_text("x = 1\n")
    config, source = '{"lr": 0.1, "epochs": 40}', "def f(x):\n    return x + 1\n"

    def digest(config: str, source: str) -> str:
        train.write_text(config)
        module.write_text(source)
        return code_digest(tmp_path)

    base = digest(config, 'def f(x):\n    """Doc."""\n    return x + 1  # one\n')
    assert (
        digest('{"epochs": 40,\n "lr": 0.1}', "def f(x):\n    'Other doc.'\n    return (x +\n            1)\n") == base
    )
    assert digest(config, source) == base
    benchmark.write_text("x = 2\n")  # the benchmark scripts do not run in a training run
    assert digest(config, source) == base
    assert digest(config, source.replace("1", "2")) != base
    assert digest(config.replace("0.1", "0.2"), source) != base
    assert digest(config, 'def f(x):\n    """Doc."""\n    return "x + 1"\n') != base


def test_summary_gap_closed():
    results = [
        result(CLEAN, "clean", 0, 0.80, 0.70),
        result(CLEAN, "clean", 1, 0.82, 0.72),
        result(NOISY_CE, "ellipse", 0, 0.60, 0.50),
        result(NOISY_CE, "ellipse", 1, 0.62, 0.52),
        result("JCAS", "ellipse", 0, 0.70, 0.60),
        result("JCAS", "ellipse", 1, 0.74, 0.62),
    ]
    rows, summary = summarise(results, ["ellipse"], [CLEAN, NOISY_CE, "JCAS"])
    assert summary["JCAS", "ellipse"]["mdice"][0] == pytest.approx(0.72)
    assert summary["JCAS", "ellipse"]["mdice"][1] == pytest.approx(0.0282843, rel=1e-5)  # sample std
    jcas_row = next(r for r in rows if r.startswith("| JCAS"))
    # gap: clean 0.81, CE 0.61, JCAS 0.72 -> 0.11 / 0.20 = 55 %
    assert jcas_row == "| JCAS | 72.0 ± 2.8 | 61.0 ± 1.4 | 55 % |"
    assert next(r for r in rows if r.startswith("| CE |")).endswith("| 0 % |")


def test_read_scores_averages_classes_not_images(tmp_path):
    for metric, values in (("val_mean_dice", (0.9, 0.5, 0.4)), ("val_mean_iou", (0.8, 0.3, 0.2))):
        names = ("shaft", "wrist", "clasper")  # the rows are named by the config's class_names
        rows = [f"{name},{v},0" for name, v in zip(names, values, strict=True)]
        (tmp_path / f"{metric}_summary.csv").write_text("\n".join(["class,mean,median", *rows, "mean,0.99,0"]))
    scores = read_scores(tmp_path)
    assert scores["mdice"] == pytest.approx(0.6) and scores["mjaccard"] == pytest.approx(13 / 30)
    assert scores["dice_wrist"] == 0.5 and scores["jaccard_clasper"] == 0.2


def test_quick_defaults_and_overrides():
    args = parse_args(["--quick", "--override", "image_size=[80, 64]", "amp=false"])
    assert (args.seeds, args.epochs, args.warmup, args.modes) == ([0], 40, 15, ["confusion", "symmetric"])
    assert args.override == {"image_size": [80, 64], "amp": False}
    with pytest.raises(SystemExit):
        parse_args(["--epochs", "5", "--warmup", "6"])


def test_target_check():
    summary = {
        (CLEAN, "ellipse"): {"mdice": (0.80, 0.01)},
        (NOISY_CE, "ellipse"): {"mdice": (0.60, 0.02)},
        ("JCAS", "ellipse"): {"mdice": (0.71, 0.03)},
        (CLEAN, "asymmetric"): {"mdice": (0.80, 0.01)},
        (NOISY_CE, "asymmetric"): {"mdice": (0.40, 0.02)},
        ("JCAS", "asymmetric"): {"mdice": (0.36, 0.01)},
    }
    lines = target_check(summary, ["ellipse", "asymmetric", "morph"])
    assert lines[2] == "- ellipse: gap closed 55 % (met); JCAS − CE = +11.0 points, within one std of CE or above"
    assert lines[3] == (
        "- asymmetric: gap closed -10 % (not met); JCAS − CE = -4.0 points, worse than CE by more than one std"
    )
    assert len(lines) == 4  # no line for a mode without results


def test_run_plan_learning_rates(tmp_path):
    args = parse_args(["--quick", "--lr_ce", "0.07", "--override", "learning_rate=0.01"])
    datalist = tmp_path / "datalist.json"
    run_dir, ce = run_plan(args, NOISY_CE, "ellipse", 1, datalist, tmp_path)
    assert run_dir == tmp_path / "runs" / "ellipse" / "CE" / "seed1"
    assert run_plan(parse_args(["--tag", "v2"]), NOISY_CE, "ellipse", 1, datalist, tmp_path)[0].parent.name == "CE__v2"
    assert (ce["learning_rate"], ce["use_dar"], ce["warmup_epochs"], ce["seed"]) == (0.07, False, 40, 1)
    _, jcas = run_plan(args, "JCAS", "ellipse", 1, datalist, tmp_path)
    assert (jcas["learning_rate"], jcas["warmup_epochs"]) == (0.01, 15) and "use_dar" not in jcas
    assert "JCAS without L_A" not in args.methods
    _, trusted = run_plan(args, TRUSTED, "asymmetric", 0, datalist, tmp_path)
    assert trusted["transition_estimate"] == "trusted" and trusted["learning_rate"] == 0.01
    assert trusted["reference_transition"] == datalist.parent / "noise_report.json"
    assert parse_args([]).modes == ["ellipse", "morph", "symmetric", "pairflip", "confusion"]


def test_run_plan_robust_loss_peers(tmp_path):
    """The peers train through loss_type on the backbone without DAR, at their own learning rate when one is given."""
    args = parse_args(["--methods", "GCE", "T-Loss", "--lr_ce", "0.05", "--method_lr", "GCE=0.2"])
    datalist = tmp_path / "datalist.json"
    _, gce = run_plan(args, "GCE", "confusion", 0, datalist, tmp_path)
    assert (gce["loss_type"], gce["learning_rate"], gce["use_dar"], gce["warmup_epochs"]) == ("gce", 0.2, False, 40)
    _, tloss = run_plan(args, "T-Loss", "confusion", 0, datalist, tmp_path)
    assert (tloss["loss_type"], tloss["learning_rate"]) == ("tloss", 0.05)
    assert not set(PEERS) & set(parse_args([]).methods)  # named, not run by default
    for bad in ("JCAS=0.1", "GCE=fast", "Nope=0.1"):
        with pytest.raises(SystemExit):
            parse_args(["--method_lr", bad])


def test_peer_check_names_the_best_peer():
    results = [result("JCAS", "confusion", s, d, 0.5) for s, d in enumerate((0.70, 0.72, 0.68))]
    results += [result("GCE", "confusion", s, d, 0.5) for s, d in enumerate((0.60, 0.62, 0.61))]
    results += [result("JCAS", "symmetric", s, d, 0.5) for s, d in enumerate((0.40, 0.42, 0.41))]
    results += [result("GCE", "symmetric", s, d, 0.5) for s, d in enumerate((0.55, 0.56, 0.57))]
    results += [result("T-Loss", "symmetric", s, d, 0.5) for s, d in enumerate((0.43, 0.40, 0.37))]
    _, summary = summarise(results, ["confusion", "symmetric"], ["JCAS", "GCE", "T-Loss"])
    lines = peer_check(summary, ["confusion", "symmetric", "ellipse"])
    assert lines[2] == "- confusion: best peer GCE 61.0; JCAS +9.0 points, ahead"
    assert lines[3] == "- symmetric: best peer GCE 56.0; JCAS -15.0 points, behind by more than one std"
    assert len(lines) == 4  # no line for a mode without results


def test_a_tuned_run_is_evaluated_not_trained_again(tmp_path):
    """--tune trains and reports validation only; the full run of the same settings evaluates that model on test
    (training is not repeated: train.log is untouched), and a third call reads the stored result."""
    datalist = make_demo_dataset(tmp_path / "data", num_train=2, num_val=1, num_test=1, size=(32, 40))
    tiny = [
        "unet_channels=[8, 16, 32]",
        "unet_strides=[2, 2]",
        "feature_channels=8",
        "embedding_channels=8",
        "affinity_grid=8",
        "image_size=[40, 32]",
        "num_workers=0",
    ]
    common = ["--methods", "JCAS", "--epochs", "2", "--warmup", "1", "--override", *tiny]
    tuned = run_one(parse_args(["--tune", *common]), "JCAS", None, 0, Path(datalist), tmp_path)
    assert "mdice" not in tuned and 0 <= tuned["val_mdice"] <= 1 and tuned["val_epoch"] in (1, 2)
    run_dir = tmp_path / "runs" / "clean" / "JCAS" / "seed0"
    trained = (run_dir / "train.log").stat().st_mtime_ns
    full = run_one(parse_args(common), "JCAS", None, 0, Path(datalist), tmp_path)
    assert (run_dir / "train.log").stat().st_mtime_ns == trained and (run_dir / "evaluate.log").is_file()
    assert {k: full[k] for k in tuned if k != "t_class"} == {k: tuned[k] for k in tuned if k != "t_class"}
    assert 0 <= full["mdice"] <= 1 and full["t_class"] == tuned["t_class"]
    assert json.loads((run_dir / "result.json").read_text()) == full
    assert run_one(parse_args(common), "JCAS", None, 0, Path(datalist), tmp_path) == full
