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
"""Label-cleaning benchmark: does ``configs/clean_labels.json`` find the corrupted training masks, and are its
corrected labels closer to the clean ones than the given labels?

Usage::

    python -m benchmarks.label_cleaning                      # every mode and seed (resumes), then the table
    python -m benchmarks.label_cleaning --stage train        # only train (JCAS and the CE baseline)
    python -m benchmarks.label_cleaning --report             # table and CSV from the committed results only
    python -m benchmarks.label_cleaning --sweep 0 0.05 0.1 --seeds 100   # clean_min_score on a development seed

Data: the demo generator without noise (48 training, 16 validation, 32 test frames), whose training labels
``scripts.make_noisy`` corrupts with ``--fraction 0.3`` in each mode (ellipse, morph, omission, model-made labels),
noise seed = the run's seed, so each seed has its own set of corrupted cases. Per mode and seed:

1. train the bundle's default JCAS (``configs/train.json``, budget below) and, as the "training on the given labels"
   baseline, plain cross-entropy on the same backbone without DAR (the robustness benchmark's CE settings); both
   are evaluated on the clean test split (``evaluate.json``), so "the model beats training on the given labels"
   reads JCAS's test mDice against CE's;
2. run ``clean_labels.json`` on the JCAS model and the training split (with ``clean_save_probabilities`` on, so the
   baselines below score the very same posteriors);
3. score each ranking against make_noisy's ``corrupted`` flags: precision at k (k = the number of corrupted cases)
   and AUROC; and the mean per-case foreground Dice of the corrected labels against the clean ones next to that of
   the given labels.

Methods ranked: ``ours`` (ranking.csv's ``score``), ``ours_pair`` (its pair score), ``ours_image`` (its suspect
share of the whole image), ``confident_learning`` (Northcutt et al., JAIR 2021, :mod:`benchmarks.confident_learning`,
from the same posteriors) and ``disagreement`` (share of pixels whose given label is not the prediction's argmax).
The cleaning runs with the config's defaults: ``suspect_threshold`` 0.1 was fixed before any score was seen,
``suspect_opening_radius`` 1 was chosen on a development seed (100) that is not among the scored ones; nothing is
read from the test split but the two models' mDice.

Each (mode, seed) leaves ``benchmarks/results/label_cleaning/<mode>/seed<seed>.json`` (commit them: a later run
reuses those made at the same budget and cleaning settings, :func:`is_current`); ``--out`` gets
``label_cleaning.md`` and ``label_cleaning.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bundle_runs import BUNDLE_ROOT, bundle_run, code_identity, read_per_image
from benchmarks.confident_learning import class_thresholds, issue_corrected, issue_share
from benchmarks.paired_stats import mdice

RESULTS = BUNDLE_ROOT / "benchmarks" / "results" / "label_cleaning"
MODES = {  # benchmark mode -> scripts.make_noisy.make_noisy arguments (fraction added)
    "ellipse": {"mode": "ellipse"},
    "morph": {"mode": "morph", "radius": (2, 6)},
    "omission": {"mode": "omission", "rate": 0.3},
    "model": {"mode": "model"},
}
FRACTION = 0.3
BUDGET = {  # the robustness benchmark's input size and budget; train.json's switch and plateau stop
    "image_size": [96, 80],
    "affinity_grid": 16,
    "max_epochs": 60,
    "tensorboard_images": 0,
    "progress_bar": False,
}
TRAINED = {  # method -> train.json overrides on top of BUDGET (CE as the robustness benchmark trains it)
    "JCAS": {},
    "CE": {
        "loss_type": "ce",
        "use_dar": False,
        "lambda_affinity": 0.0,
        "lambda_consistency": 0.0,
        "warmup_epochs": 60,
        "learning_rate": 0.05,
    },
}
RANKED = ("ours", "ours_pair", "ours_image", "confident_learning", "disagreement")


def clean_settings() -> dict[str, Any]:
    """The ``clean_labels.json`` defaults a result depends on (with :data:`BUDGET`, what makes it current)."""
    config = json.loads((BUNDLE_ROOT / "configs" / "clean_labels.json").read_text())
    return {k: config[k] for k in ("suspect_threshold", "suspect_opening_radius", "clean_min_score")}


def is_current(result: dict[str, Any]) -> bool:
    """Whether a result was made at today's budget and cleaning settings (else the next run redoes it)."""
    return result.get("budget") == BUDGET and result.get("clean_settings") == clean_settings()


def prepare_data(work: Path, mode: str, seed: int) -> Path:
    """The noisy datalist of ``mode`` (noise seed ``seed``), made once under ``work/data``."""
    from scripts.demo_data import ensure_demo_dataset
    from scripts.make_noisy import make_noisy

    clean = Path(ensure_demo_dataset(work / "data" / "clean", num_train=48, num_val=16, num_test=32, noise=None))
    out = work / "data" / f"{mode}_seed{seed}"
    if not (out / "datalist.json").is_file():
        make_noisy(clean, out, seed=seed, overwrite=True, fraction=FRACTION, **MODES[mode])
    return out / "datalist.json"


def run_overrides(datalist: Path, run_dir: Path, method: str, seed: int) -> dict[str, Any]:
    """The train.json overrides of one run."""
    return {
        **BUDGET,
        **TRAINED[method],
        "seed": seed,
        "datalist": datalist,
        "dataset_dir": datalist.parent,
        "ckpt_dir": run_dir / "models",
        "output_dir": run_dir / "train",
    }


def train_and_test(datalist: Path, run_dir: Path, method: str, seed: int, threads: int) -> dict[str, Any]:
    """Train ``method`` (unless its final checkpoint exists) and evaluate its selected model on the test split."""
    overrides = run_overrides(datalist, run_dir, method, seed)
    start = time.perf_counter()
    if not (run_dir / "models" / "checkpoint_final.pt").is_file():
        bundle_run(["train.json"], overrides, run_dir / "train.log", threads)
    train_s = time.perf_counter() - start
    if not (run_dir / "eval_test" / "val_mean_dice_raw.csv").is_file():
        bundle_run(
            ["train.json", "evaluate.json"],
            {**overrides, "output_dir": run_dir / "eval_test"},
            run_dir / "evaluate.log",
            threads,
        )
    per_image = read_per_image(run_dir / "eval_test")
    dice = np.array([[np.nan if v is None else v for v in row] for row in per_image["dice"]], dtype=np.float64)
    return {"test_mdice": mdice(dice), "train_s": round(train_s, 1)}


def precision_at_k(scores: Sequence[float], truth: Sequence[bool], k: int | None = None) -> float:
    """The share of truly corrupted cases among the ``k`` highest scores (``k`` None: the number of corrupted
    cases); ties at the cut are broken by the order given (the case index)."""
    truth = np.asarray(truth, dtype=bool)
    k = int(truth.sum()) if k is None else k
    if k <= 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return float(truth[order[:k]].mean())


def auroc(scores: Sequence[float], truth: Sequence[bool]) -> float:
    """The probability that a corrupted case scores above a clean one, ties counting half (Mann-Whitney U)."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    positive, negative = scores[truth], scores[~truth]
    if not len(positive) or not len(negative):
        return float("nan")
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positive) * len(negative)))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    import torch
    from scripts.label_cleaning import foreground_dice

    return foreground_dice(torch.as_tensor(a.astype(np.int64)), torch.as_tensor(b.astype(np.int64)), 4)


def clean_and_score(
    datalist: Path, run_dir: Path, seed: int, threads: int, min_score: float | None = None
) -> dict[str, Any]:
    """Run ``clean_labels.json`` on the JCAS model of ``run_dir`` (``min_score``: a ``clean_min_score`` other than
    the config's); score every method's ranking and correction."""
    from scripts.make_noisy import read_label

    clean_dir = run_dir / "clean_labels"
    overrides = {**run_overrides(datalist, run_dir, "JCAS", seed), "clean_dir": clean_dir}
    overrides["clean_save_probabilities"] = True
    if min_score is not None:
        overrides["clean_min_score"] = min_score
    bundle_run(["train.json", "clean_labels.json"], overrides, run_dir / "clean_labels.log", threads)
    report = json.loads((datalist.parent / "noise_report.json").read_text())
    truth = {c["index"]: c for c in report["cases"] if c["split"] == "training"}
    with open(clean_dir / "ranking.csv") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    cases = []
    for row in rows:
        index = int(row["index"])
        probs = np.load(clean_dir / "probabilities" / f"{index:05d}.npy").astype(np.float32)
        given = read_label(Path(row["label"])).array
        cases.append((index, probs, given, read_label(Path(truth[index]["label_clean"])).array, row))
    thresholds = class_thresholds([(p, g) for _, p, g, _, _ in cases], 4)
    per_case = []
    for index, probs, given, clean, row in cases:
        ours = read_label(Path(row["corrected_label"])).array
        prediction = probs.argmax(axis=0)
        per_case.append(
            {
                "index": index,
                "corrupted": bool(truth[index]["corrupted"]),
                "noise_pixel": truth[index]["pixel"],
                "scores": {
                    "ours": float(row["score"]),
                    "ours_pair": float(row["pair_score"]),
                    "ours_image": float(row["pixel_share"]),
                    "confident_learning": issue_share(probs, given, thresholds),
                    "disagreement": float((prediction != given).mean()),
                },
                "dice_given": _dice(given, clean),
                "dice_corrected": {
                    "ours": _dice(ours, clean),
                    "confident_learning": _dice(issue_corrected(probs, given, thresholds), clean),
                    "disagreement": _dice(prediction, clean),
                },
            }
        )
    summary = json.loads((clean_dir / "summary.json").read_text())
    return {
        "cases": per_case,
        "thresholds_cl": thresholds.tolist(),
        "transitions_source": summary["transitions_source"],
    }


def min_score_sweep(result: dict[str, Any], values: Sequence[float]) -> list[dict[str, Any]]:
    """What ``clean_min_score`` would give, from a result cleaned without it: per value, how many cases are
    corrected and the mean Dice gain over all cases (and the corrupted ones), a case under the value keeping its
    given label. The ranking does not depend on it."""
    cases = result["cases"]
    rows = []
    for value in values:
        gains = [c["dice_corrected"]["ours"] - c["dice_given"] if c["scores"]["ours"] >= value else 0.0 for c in cases]
        corrupted = [g for g, c in zip(gains, cases, strict=True) if c["corrupted"]]
        rows.append(
            {
                "mode": result["mode"],
                "seed": result["seed"],
                "clean_min_score": value,
                "corrected_cases": sum(c["scores"]["ours"] >= value for c in cases),
                "gain": round(statistics.fmean(gains), 4),
                "gain_corrupted": round(statistics.fmean(corrupted), 4),
            }
        )
    return rows


def method_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row per ranked method of a (mode, seed) result."""
    cases = result["cases"]
    truth = [c["corrupted"] for c in cases]
    corrupted = [c for c in cases if c["corrupted"]]
    rows = []
    for method in RANKED:
        scores = [c["scores"][method] for c in cases]
        corrected = method if method in cases[0]["dice_corrected"] else None
        row = {
            "mode": result["mode"],
            "method": method,
            "seed": result["seed"],
            "cases": len(cases),
            "k": sum(truth),
            "precision_at_k": round(precision_at_k(scores, truth), 4),
            "auroc": round(auroc(scores, truth), 4),
            "dice_given": round(statistics.fmean(c["dice_given"] for c in cases), 4),
            "dice_corrected": "",
            "dice_given_corrupted": round(statistics.fmean(c["dice_given"] for c in corrupted), 4),
            "dice_corrected_corrupted": "",
            "jcas_test_mdice": round(100 * result["models"]["JCAS"]["test_mdice"], 2),
            "ce_test_mdice": round(100 * result["models"]["CE"]["test_mdice"], 2),
        }
        if corrected:
            row["dice_corrected"] = round(statistics.fmean(c["dice_corrected"][corrected] for c in cases), 4)
            mean = statistics.fmean(c["dice_corrected"][corrected] for c in corrupted)
            row["dice_corrected_corrupted"] = round(mean, 4)
        rows.append(row)
    return rows


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if r[key] != ""]
    return statistics.fmean(values) if values else float("nan")


def report(results: list[dict[str, Any]], out: Path, command: str) -> str:
    """Write ``label_cleaning.md`` and ``label_cleaning.csv`` from the per-(mode, seed) results; return the text."""
    rows = [row for result in results for row in method_rows(result)]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "label_cleaning.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# Label cleaning benchmark",
        "",
        f"Generated by `{command}` from `benchmarks/results/label_cleaning/` ({len(results)} runs: modes "
        f"{', '.join(modes)}; seeds {seeds}). Demo data, 48 training cases of which make_noisy corrupts a share "
        f"{FRACTION} (noise seed = seed); JCAS trained with the bundle's defaults (switch from its curves, "
        f"validation plateau stop, at most {BUDGET['max_epochs']} epochs; {BUDGET['image_size'][0]} x "
        f"{BUDGET['image_size'][1]} input), then `clean_labels.json` with its defaults "
        "on the training split. P@k: precision at k = the number of corrupted cases; AUROC of the ranking against "
        "make_noisy's `corrupted` flags; Dice: mean per-case foreground Dice against the clean labels, all cases "
        "(and in brackets the corrupted ones), given labels against each method's corrected labels. Means over "
        "seeds.",
        "",
        "Settings: `suspect_threshold` 0.1 fixed before any score was seen; `suspect_opening_radius` 1 chosen on a "
        "development seed (100: its own noise and training) that is not among these. Both rankings read the same "
        "in-sample posteriors of the JCAS network (confident learning's paper uses cross-validated ones). "
        "`ours_pair` and `ours_image` are the pair score and the whole-image share of ranking.csv; a method without "
        "its own correction has no Dice.",
        "",
        *_stale_line(results),
        "| mode | seeds | method | P@k | AUROC | Dice given | Dice corrected | gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for mode in modes:
        for method in RANKED:
            sel = [r for r in rows if (r["mode"], r["method"]) == (mode, method)]
            given, corrected = _mean(sel, "dice_given"), _mean(sel, "dice_corrected")
            given_c, corrected_c = _mean(sel, "dice_given_corrupted"), _mean(sel, "dice_corrected_corrupted")
            has = not np.isnan(corrected)
            mode_seeds = ", ".join(str(r["seed"]) for r in sel)
            lines.append(
                f"| {mode} | {mode_seeds} | {method} | {_mean(sel, 'precision_at_k'):.3f} | "
                f"{_mean(sel, 'auroc'):.3f} | "
                f"{given:.3f} ({given_c:.3f}) | "
                + (
                    f"{corrected:.3f} ({corrected_c:.3f}) | {corrected - given:+.3f} ({corrected_c - given_c:+.3f}) |"
                    if has
                    else "– | – |"
                )
            )
        sel = [r for r in rows if r["mode"] == mode and r["method"] == "ours"]
        cl = [r for r in rows if r["mode"] == mode and r["method"] == "confident_learning"]
        gain = _mean(sel, "dice_corrected") - _mean(sel, "dice_given")
        p_ours, p_cl = _mean(sel, "precision_at_k"), _mean(cl, "precision_at_k")
        per_seed = []
        for r in sel:  # the Dice target holds seed by seed, where that seed's JCAS beats that seed's CE
            seed_gain = r["dice_corrected"] - r["dice_given"]
            beats = r["jcas_test_mdice"] > r["ce_test_mdice"]
            verdict = ("met" if seed_gain > 0 else "NOT met") if beats else "not required"
            per_seed.append(
                f"seed {r['seed']}: JCAS {r['jcas_test_mdice']:.1f} vs CE {r['ce_test_mdice']:.1f}, gain "
                f"{seed_gain:+.3f} {verdict}"
            )
        verdicts.append(
            f"- {mode}: Dice gain {gain:+.3f} ({'; '.join(per_seed)}); P@k ours {p_ours:.3f}, confident learning "
            f"{p_cl:.3f}: {'met' if p_ours >= p_cl else 'NOT met'}."
        )
    lines += [
        "",
        "Against the target (Dice gain > 0 in every mode where JCAS beats CE trained on the same given labels, on the "
        "clean test split; P@k at least confident learning's). With about 15 corrupted cases per seed, one case moves "
        "P@k by 0.07: differences of that size are within chance.",
        "",
    ]
    lines += verdicts
    text = "\n".join(lines) + "\n"
    (out / "label_cleaning.md").write_text(text)
    return text


def _stale_line(results: list[dict[str, Any]]) -> list[str]:
    """A Markdown paragraph naming the results that are not :func:`is_current` (none: nothing)."""
    stale = [f"{r['mode']} seed {r['seed']}" for r in results if not is_current(r)]
    if not stale:
        return []
    return [
        f"**Provisional**: {len(stale)} of {len(results)} results were made at an earlier budget or cleaning settings "
        f"({', '.join(stale)}); the next `python -m benchmarks.label_cleaning` retrains them.",
        "",
    ]


def load_results(results: Path) -> list[dict[str, Any]]:
    """Every committed (mode, seed) result under ``results``."""
    return [json.loads(p.read_text()) for p in sorted(results.rglob("seed*.json"))]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--methods", nargs="+", default=list(TRAINED), choices=list(TRAINED), help="models trained")
    parser.add_argument("--stage", choices=("train", "all"), default="all", help="train only, or everything")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of each bundle run")
    parser.add_argument("--report", action="store_true", help="only regenerate the table from the results")
    parser.add_argument(
        "--sweep",
        type=float,
        nargs="+",
        help="development only: train JCAS, clean without clean_min_score, and tabulate these values of it",
    )
    parser.add_argument("--work", default=str(BUNDLE_ROOT / "runs" / "label_cleaning"), help="data, models, logs")
    parser.add_argument("--results", default=str(RESULTS), help="per-run result files")
    parser.add_argument("--out", default=str(BUNDLE_ROOT / "docs" / "benchmarks"), help="table and CSV")
    return parser.parse_args(argv)


def sweep(args: argparse.Namespace, work: Path, command: str) -> None:
    """``--sweep``: :func:`min_score_sweep` on each (mode, seed), written to ``<out>/label_cleaning_sweep.md``."""
    rows = []
    for seed in args.seeds:
        for mode in args.modes:
            datalist = prepare_data(work, mode, seed)
            run_dir = work / "runs" / mode / "JCAS" / f"seed{seed}"
            train_and_test(datalist, run_dir, "JCAS", seed, args.threads)
            scored = clean_and_score(datalist, run_dir, seed, args.threads, min_score=0.0)
            truth = [c["corrupted"] for c in scored["cases"]]
            print(f"{mode} | seed {seed} | P@k {precision_at_k([c['scores']['ours'] for c in scored['cases']], truth)}")
            rows += min_score_sweep({"mode": mode, "seed": seed, **scored}, args.sweep)
    lines = [f"# `clean_min_score` on development seeds\n\nGenerated by `{command}`.\n"]
    lines += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "label_cleaning_sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(BUNDLE_ROOT))
    command = shlex.join(["python", "-m", "benchmarks.label_cleaning", *(argv if argv is not None else sys.argv[1:])])
    work, results = Path(args.work), Path(args.results)
    if args.sweep:
        sweep(args, work, command)
        return
    if not args.report:
        for seed in args.seeds:
            for mode in args.modes:
                path = results / mode / f"seed{seed}.json"
                if path.is_file() and is_current(json.loads(path.read_text())):
                    print(f"{mode} | seed {seed} | reused {path}", flush=True)
                    continue
                datalist = prepare_data(work, mode, seed)
                models = {}
                for method in args.methods:
                    run_dir = work / "runs" / mode / method / f"seed{seed}"
                    models[method] = train_and_test(datalist, run_dir, method, seed, args.threads)
                    print(
                        f"{mode} | {method} | seed {seed} | test mDice {100 * models[method]['test_mdice']:.1f}",
                        flush=True,
                    )
                if args.stage == "train" or set(models) != set(TRAINED):
                    continue
                scored = clean_and_score(datalist, work / "runs" / mode / "JCAS" / f"seed{seed}", seed, args.threads)
                result = {"mode": mode, "seed": seed, "fraction": FRACTION, "budget": BUDGET, "models": models}
                result.update(clean_settings=clean_settings(), code=code_identity(), **scored)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(result, indent=1) + "\n")
                for row in method_rows(result):
                    print(" | ".join(str(v) for v in row.values()), flush=True)
    done = load_results(results)
    if not done:
        print(f"no label-cleaning result in {results} yet: nothing to tabulate")
        return
    print(report(done, Path(args.out), command))


if __name__ == "__main__":
    main()
