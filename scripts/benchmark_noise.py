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
"""Robustness benchmark: JCAS against cross-entropy, robust losses, its ablations and the clean-label upper bound.

Usage::

    python -m scripts.benchmark_noise --quick            # 1 seed, confusion and symmetric noise
    python -m scripts.benchmark_noise                    # 3 seeds, all four noise modes: ~2 h on 2 CPUs
    python -m scripts.benchmark_noise --datalist my/datalist.json --num_classes 3 --override image_size=[96,96,96]

Every run trains and evaluates through the bundle's own configs (``configs/train.json``, ``configs/evaluate.json``)
with command-line overrides, in a subprocess. The training labels of a clean datalist (by default the demo data,
generated without noise) are corrupted with ``scripts.make_noisy`` in each noise mode; model selection uses the
validation split only, and scores come from the held-out test split with clean labels. The methods without DAR
train at ``--lr_ce`` (cross-entropy's best on validation) or their own ``--method_lr``, the others at train.json's
``learning_rate``. The robust-loss peers (``--methods`` "Dice-CE" "GCE" "T-Loss") are the bundle's ``loss_type``
options on the same backbone without DAR. A finished
run is reused when its overrides and the code it ran (configs and scripts, see :func:`code_digest`) are unchanged,
so an interrupted benchmark continues where it stopped, and ``--quick`` and the full setting share runs; a
``--tune`` run (validation only) is evaluated on test by a later full run of the same settings, not trained again.

Output (``--out``): ``noise_benchmark_{quick,full}.md`` (mDice and mJac per method and noise mode, mean ± std over
seeds, the share of the gap between noisy cross-entropy and the clean upper bound each method closes, and the
target check), ``.csv`` (one row per run) and ``.png``.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUNDLE_ROOT = Path(__file__).resolve().parents[1]
MODES = {  # benchmark noise mode -> arguments of scripts.make_noisy.make_noisy
    "ellipse": {"mode": "ellipse"},
    "morph": {"mode": "morph", "radius": (2, 6)},
    "symmetric": {"mode": "symmetric", "rate": 0.5},
    "pairflip": {"mode": "asymmetric", "rate": 0.4},  # c -> c + 1 at 40 %: identifiable, majority label right
    "confusion": {"mode": "asymmetric", "class_map": (0, 1, 1, 3), "rate": 0.6},  # wrist labelled shaft 60 %
    "cyclic50": {"mode": "asymmetric", "rate": 0.5},  # stress mode: singular T, no method can identify it
}
QUICK_MODES = ["confusion", "symmetric"]
DEFAULT_MODES = ["ellipse", "morph", "symmetric", "pairflip", "confusion"]
TRUSTED = "JCAS, T_C from trusted labels (ours)"  # T_C estimated on the clean validation split at the switch
FROM_IDENTITY = "JCAS, T_C learned from the identity"  # no estimate at the switch: the published schedule
NO_AFFINITY = {"use_dar": False, "lambda_affinity": 0.0, "lambda_consistency": 0.0}
METHODS = {  # method -> train.json overrides; warmup_epochs None: no correction stage; NO_AFFINITY ones use --lr_ce
    "CE (clean labels)": {**NO_AFFINITY, "warmup_epochs": None},
    "CE": {**NO_AFFINITY, "warmup_epochs": None},
    "T_C only (VolMin)": NO_AFFINITY,
    "DAR + L_A, no correction": {"warmup_epochs": None},
    "JCAS": {},
    "JCAS without L_A": {"lambda_affinity": 0.0},
    FROM_IDENTITY: {"transition_estimate": "none"},
    TRUSTED: {"transition_estimate": "trusted"},
    "Dice-CE": {**NO_AFFINITY, "warmup_epochs": None, "loss_type": "dice_ce"},  # MONAI's DiceCELoss
    "GCE": {**NO_AFFINITY, "warmup_epochs": None, "loss_type": "gce"},  # generalized cross-entropy, q = gce_q
    "T-Loss": {**NO_AFFINITY, "warmup_epochs": None, "loss_type": "tloss"},  # Student-t NLL, learned tolerance
}
PEERS = ("Dice-CE", "GCE", "T-Loss")
CLEAN, NOISY_CE = "CE (clean labels)", "CE"
EXTRA_METHODS = ("JCAS without L_A", FROM_IDENTITY, TRUSTED, *PEERS)  # run only when named in --methods


def cli_value(value) -> str:
    """A value as python-fire (MONAI's command line) reads it back: Python literals, so ``False``, not ``false``."""
    return (
        repr(list(value) if isinstance(value, tuple) else value) if not isinstance(value, (str, Path)) else str(value)
    )


def bundle_run(configs: list[str], overrides: dict, log: Path) -> None:
    """``python -m monai.bundle run`` on the bundle's configs with overrides; the log goes to ``log``."""
    files = [str(BUNDLE_ROOT / "configs" / name) for name in configs]
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        json.dumps(files) if len(files) > 1 else files[0],
    ]
    cmd += ["--logging_file", str(BUNDLE_ROOT / "configs" / "logging.conf"), "--bundle_root", str(BUNDLE_ROOT)]
    for key, value in overrides.items():
        cmd += [f"--{key}", cli_value(value)]
    with open(log, "w") as f:
        done = subprocess.run(cmd, cwd=BUNDLE_ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        raise RuntimeError(f"bundle run failed (exit {done.returncode}), see {log}: {' '.join(cmd)}")


def _executed_text(path: Path) -> str:
    """What ``path`` executes: a JSON file's parsed value, a Python file's syntax tree without its docstrings (comments
    and layout are not in the tree), so that an edit of documentation or line breaks keeps finished runs valid."""
    if path.suffix == ".json":
        return json.dumps(json.loads(path.read_text()), sort_keys=True)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, documented) and ast.get_docstring(node, clean=False) is not None:
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_digest(root: Path = BUNDLE_ROOT) -> str:
    """SHA-256 of what a run executes: ``configs/train.json``, ``configs/evaluate.json`` and the bundle's scripts
    (the benchmark scripts aside), each as :func:`_executed_text`. A finished run is reused only if this and its
    overrides are unchanged."""
    digest = hashlib.sha256()
    files = [root / "configs" / name for name in ("train.json", "evaluate.json")]
    files += sorted(p for p in (root / "scripts").glob("*.py") if not p.name.startswith("benchmark_"))
    for path in files:
        digest.update(path.name.encode() + b"\0" + _executed_text(path).encode())
    return digest.hexdigest()


def read_scores(eval_dir: Path) -> dict[str, float]:
    """The paper's metric from the evaluation CSVs: per class, the mean over the test images containing it
    (MetricsSaver's per-class summary ignores images where the class is absent); mDice and mJac average them.
    The summary's rows are named by the config's ``class_names`` (``dice_shaft``, ...), the last row is ``mean``."""
    scores = {}
    for metric, name in (("val_mean_dice", "dice"), ("val_mean_iou", "jaccard")):
        with open(eval_dir / f"{metric}_summary.csv") as f:
            per_class = {row["class"]: float(row["mean"]) for row in csv.DictReader(f) if row["class"] != "mean"}
        for cls, value in per_class.items():
            scores[f"{name}_{cls}"] = value
        scores[f"m{name}"] = statistics.fmean(per_class.values())
    return scores


def best_validation(log: Path) -> tuple[float, int]:
    """The best validation mean Dice of a training run and its epoch, from the last "best value" line of its log
    (MONAI's ``StatsHandler`` line ``Key metric: val_mean_dice best value: 0.72 at epoch: 31``)."""
    best = [line for line in log.read_text().splitlines() if "val_mean_dice best value:" in line]
    if not best:
        raise RuntimeError(f"{log}: no validation result in the training log")
    value, epoch = best[-1].split("best value:")[1].split("at epoch:")
    return float(value), int(epoch)


def prepare_datalists(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Path]]:
    """The clean datalist (training labels replaced by the clean ones) and one noisy datalist per mode."""
    from scripts.make_noisy import make_noisy

    if args.datalist is None:
        from scripts.demo_data import ensure_demo_dataset

        source = Path(ensure_demo_dataset(work / "data" / "demo_clean", noise=None))
    else:
        source = Path(args.datalist).resolve()
    noisy = {}
    for mode in args.modes:
        out = work / "data" / mode
        if not (out / "datalist.json").is_file():
            make_noisy(source, out, num_classes=args.num_classes, seed=args.noise_seed, overwrite=True, **MODES[mode])
        noisy[mode] = out / "datalist.json"
    content = json.loads(noisy[args.modes[0]].read_text())  # absolute paths, with the clean label kept
    for entry in content["training"]:
        entry["label"] = entry["label_clean"]
    clean = work / "data" / "clean_datalist.json"
    clean.write_text(json.dumps(content, indent=1))
    return clean, noisy


def run_plan(args, method: str, mode: str | None, seed: int, datalist: Path, work: Path) -> tuple[Path, dict]:
    """The run folder and the train.json overrides of one (method, noise mode, seed)."""
    name = method.replace(" ", "_").replace("(", "").replace(")", "")
    name += f"__{args.tag}" if args.tag else ""  # a named variant keeps its runs apart
    run_dir = work / "runs" / (mode or "clean") / name / f"seed{seed}"
    overrides = {
        "datalist": datalist,
        "dataset_dir": datalist.parent,
        "ckpt_dir": run_dir / "models",
        "output_dir": run_dir / "eval",
        "seed": seed,
        "num_classes": args.num_classes,
        "max_epochs": args.epochs,
        "warmup_epochs": args.warmup,
        "progress_bar": False,
        **args.override,
    }
    if mode is not None:  # the training log and transitions.json report T_C's error against the true transition
        overrides["reference_transition"] = datalist.parent / "noise_report.json"
    if not METHODS[method].get("use_dar", True):  # cross-entropy's gradient is about half of JCAS's two class terms
        overrides["learning_rate"] = args.method_lr.get(method, args.lr_ce)
    for key, value in METHODS[method].items():
        overrides[key] = args.epochs if key == "warmup_epochs" and value is None else value
    return run_dir, overrides


def run_one(args, method: str, mode: str | None, seed: int, datalist: Path, work: Path) -> dict:
    """Train and evaluate one (method, noise mode, seed); reuse a finished run made with the same settings."""
    run_dir, overrides = run_plan(args, method, mode, seed, datalist, work)
    settings = {"overrides": {k: cli_value(v) for k, v in overrides.items()}, "code": code_digest()}
    result_file = run_dir / "result.json"
    tuned = None  # a --tune run of the same settings: its model is evaluated on test rather than trained again
    if result_file.is_file():
        result = json.loads(result_file.read_text())
        if result.get("settings") == settings and (args.tune or "mdice" in result):
            return result
        if result.get("settings") == settings and (run_dir / "models" / "model.pt").is_file():
            tuned = result
    if tuned is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        bundle_run(["train.json"], overrides, run_dir / "train.log")
        train_s = time.perf_counter() - start
        result = {"method": method, "mode": mode or "clean", "seed": seed, "train_s": round(train_s, 1)}
        result["val_mdice"], result["val_epoch"] = best_validation(run_dir / "train.log")
    else:
        result = {k: tuned[k] for k in ("method", "mode", "seed", "train_s", "val_mdice", "val_epoch")}
    if not args.tune:  # tuning runs never see the test split
        bundle_run(["train.json", "evaluate.json"], overrides, run_dir / "evaluate.log")
        result.update(read_scores(run_dir / "eval"))
    transitions = run_dir / "eval" / "transitions.json"
    if transitions.is_file() and overrides.get("warmup_epochs", 0) < overrides["max_epochs"]:  # a correction ran
        learned = json.loads(transitions.read_text())
        result["t_class"] = learned["T_C"]
        if "T_C_error" in learned:
            result["t_class_error"] = learned["T_C_error"]
    result["settings"] = settings
    result_file.write_text(json.dumps(result, indent=1))
    return result


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(results: list[dict], modes: list[str], methods: list[str]) -> tuple[list[str], dict]:
    """Markdown table rows and the {(method, mode): (mDice mean, std)} summary."""
    clean = [r for r in results if r["method"] == CLEAN]
    summary = {}
    for method in methods:
        for mode in modes:
            runs = clean if method == CLEAN else [r for r in results if r["method"] == method and r["mode"] == mode]
            if runs:
                summary[method, mode] = {m: _mean_std([r[m] for r in runs]) for m in ("mdice", "mjaccard")}
    rows = [
        "| method | " + " | ".join(f"{mode}: mDice | mJac | gap closed" for mode in modes) + " |",
        "|---|" + "---|---|---|" * len(modes),
    ]
    for method in methods:
        cells = []
        for mode in modes:
            if (method, mode) not in summary:
                cells += ["-", "-", "-"]
                continue
            (dice, dice_sd), (jac, jac_sd) = summary[method, mode]["mdice"], summary[method, mode]["mjaccard"]
            cells += [f"{100 * dice:.1f} ± {100 * dice_sd:.1f}", f"{100 * jac:.1f} ± {100 * jac_sd:.1f}"]
            ce, up = summary.get((NOISY_CE, mode)), summary.get((CLEAN, mode))
            gap = (up["mdice"][0] - ce["mdice"][0]) if ce and up else 0.0
            cells.append(f"{100 * (dice - ce['mdice'][0]) / gap:.0f} %" if ce and up and abs(gap) > 1e-6 else "-")
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    return rows, summary


def tuning_rows(results: list[dict], modes: list[str], methods: list[str]) -> list[str]:
    """Markdown rows of the best validation mDice (and the learned T_C's error) per method and mode."""
    rows = [
        "| method | " + " | ".join(f"{mode}: val mDice | T_C error" for mode in modes) + " |",
        "|---|" + "---|---|" * len(modes),
    ]
    for method in methods:
        cells = []
        for mode in modes:
            runs = [r for r in results if r["method"] == method and r["mode"] in (mode, "clean")]
            if not runs:
                cells += ["-", "-"]
                continue
            dice, dice_sd = _mean_std([r["val_mdice"] for r in runs])
            errors = [r["t_class_error"] for r in runs if "t_class_error" in r]
            cells.append(f"{100 * dice:.1f} ± {100 * dice_sd:.1f}")
            cells.append(f"{statistics.fmean(errors):.3f}" if errors else "-")
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    return rows


def target_check(summary: dict, modes: list[str], method: str = "JCAS") -> list[str]:
    """Markdown lines checking the issue's target for ``method`` in each mode: it closes at least half of the gap
    between noisy CE and the clean upper bound, and is not worse than CE by more than one standard deviation."""
    lines = [f"Target check for {method} (gap closed ≥ 50 %; not below CE by more than one std of either):", ""]
    for mode in modes:
        if not all(key in summary for key in ((method, mode), (NOISY_CE, mode), (CLEAN, mode))):
            continue
        (score, score_sd), (ce, ce_sd) = summary[method, mode]["mdice"], summary[NOISY_CE, mode]["mdice"]
        gap = summary[CLEAN, mode]["mdice"][0] - ce
        closed = (score - ce) / gap if abs(gap) > 1e-6 else float("nan")
        within = score >= ce - max(score_sd, ce_sd)
        verdict = "within one std of CE or above" if within else "worse than CE by more than one std"
        lines.append(
            f"- {mode}: gap closed {100 * closed:.0f} % ({'met' if closed >= 0.5 else 'not met'}); "
            f"{method} − CE = {100 * (score - ce):+.1f} points, {verdict}"
        )
    return lines


def peer_check(summary: dict, modes: list[str], method: str = "JCAS") -> list[str]:
    """Markdown lines comparing ``method`` with the best robust-loss peer run in each mode (mean test mDice): ahead
    of it, within one standard deviation (of either), or behind by more."""
    lines = [f"Against the best robust loss ({', '.join(PEERS)}; CE included), mean test mDice:", ""]
    for mode in modes:
        peers = [(summary[p, mode]["mdice"], p) for p in (NOISY_CE, *PEERS) if (p, mode) in summary]
        if (method, mode) not in summary or not peers:
            continue
        (score, score_sd), ((best, best_sd), name) = summary[method, mode]["mdice"], max(peers)
        if score > best:
            verdict = "ahead"
        elif score >= best - max(score_sd, best_sd):
            verdict = "behind, within one std"
        else:
            verdict = "behind by more than one std"
        lines.append(
            f"- {mode}: best peer {name} {100 * best:.1f}; {method} {100 * (score - best):+.1f} points, {verdict}"
        )
    return lines


def plot(summary: dict, modes: list[str], methods: list[str], path: Path) -> None:
    """Grouped bars of mDice (± std over seeds) per noise mode and method; the clean upper bound as a line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(2.2 * len(modes) + 4, 4))
    noisy_methods = [m for m in methods if m != CLEAN]
    width = 0.8 / max(len(noisy_methods), 1)
    for k, method in enumerate(noisy_methods):
        xs = [i + (k - (len(noisy_methods) - 1) / 2) * width for i in range(len(modes))]
        values = [summary.get((method, mode), {"mdice": (float("nan"), 0.0)})["mdice"] for mode in modes]
        ax.bar(xs, [100 * v for v, _ in values], width, yerr=[100 * s for _, s in values], label=method, capsize=2)
    if (CLEAN, modes[0]) in summary:
        ax.axhline(100 * summary[CLEAN, modes[0]]["mdice"][0], color="black", linestyle="--", label=CLEAN)
    ax.set_xticks(range(len(modes)), modes)
    ax.set_ylabel("test mDice (%)")
    low = min((100 * v["mdice"][0] for v in summary.values()), default=0)
    ax.set_ylim(max(0, low - 10), None)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Test mDice with noisy training labels")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"1 seed, the {' and '.join(QUICK_MODES)} modes")
    parser.add_argument("--datalist", help="clean decathlon datalist (default: the demo data, made without noise)")
    parser.add_argument("--num_classes", type=int, default=4)
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=list(MODES),
        help=f"noise modes (default {' '.join(DEFAULT_MODES)}; cyclic50 is a stress mode)",
    )
    parser.add_argument(
        "--methods", nargs="+", default=[m for m in METHODS if m not in EXTRA_METHODS], choices=list(METHODS)
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default 0 1 2; --quick: 0)")
    parser.add_argument("--epochs", type=int, default=40, help="max_epochs of every run")
    parser.add_argument("--warmup", type=int, default=15, help="warmup_epochs of the corrected methods")
    parser.add_argument(
        "--lr_ce", type=float, default=0.05, help="learning_rate of the methods without DAR (train.json's for the rest)"
    )
    parser.add_argument(
        "--method_lr",
        nargs="*",
        default=[],
        help='learning_rate of named methods without DAR, "METHOD=LR" (chosen on validation), instead of --lr_ce',
    )
    parser.add_argument("--tune", action="store_true", help="validation only: train, never evaluate on test")
    parser.add_argument(
        "--tag", default="", help="a variant's name: its runs are kept apart, its --tune output is noise_tuning_TAG.md"
    )
    parser.add_argument("--noise_seed", type=int, default=0, help="seed of the label corruption")
    parser.add_argument("--override", nargs="*", default=[], help="more train.json overrides, key=value (JSON value)")
    parser.add_argument("--work", default=str(BUNDLE_ROOT / "runs" / "benchmark_noise"), help="data, runs, logs")
    parser.add_argument("--out", default=str(BUNDLE_ROOT / "docs" / "benchmarks"), help="folder of the results")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    args.modes = args.modes or (QUICK_MODES if args.quick else DEFAULT_MODES)
    parsed = {}
    for item in args.override:
        key, _, value = item.partition("=")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    args.override = parsed
    method_lr = {}
    for item in args.method_lr:
        method, _, value = item.rpartition("=")
        try:
            method_lr[method] = float(value)
        except ValueError:
            method = ""
        if method not in METHODS or METHODS[method].get("use_dar", True):
            parser.error(f"--method_lr {item!r}: expected METHOD=LR for a method without DAR")
    args.method_lr = method_lr
    if args.warmup > args.epochs:
        parser.error(f"--warmup {args.warmup} exceeds --epochs {args.epochs}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.chdir(BUNDLE_ROOT)
    sys.path.insert(0, str(BUNDLE_ROOT))
    name = "quick" if args.quick else "full"
    work = Path(args.work)  # one cache for both settings: a run is reused only if its settings match
    work.mkdir(parents=True, exist_ok=True)
    clean, noisy = prepare_datalists(args, work)
    start = time.perf_counter()
    results = []
    jobs = [(CLEAN, None)] if CLEAN in args.methods else []
    jobs += [(method, mode) for mode in args.modes for method in args.methods if method != CLEAN]
    for seed in args.seeds:
        for method, mode in jobs:
            result = run_one(args, method, mode, seed, clean if mode is None else noisy[mode], work)
            results.append(result)
            scores = "" if args.tune else f" | test mDice {100 * result['mdice']:.1f}"
            error = f" | T_C error {result['t_class_error']:.3f}" if "t_class_error" in result else ""
            print(
                f"{result['mode']:>10} | {method:<38} | seed {seed} | val mDice {100 * result['val_mdice']:.1f}"
                f"{scores}{error} | train {result['train_s']:.0f} s",
                flush=True,
            )
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"noise_tuning_{args.tag or 'defaults'}" if args.tune else f"noise_benchmark_{name}")
    with open(f"{stem}.csv", "w", newline="") as f:
        rows_csv = [{k: v for k, v in r.items() if k != "settings"} for r in results]
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows_csv for k in r}, key=lambda k: (k[0] != "m", k)))
        writer.writeheader()
        writer.writerows(rows_csv)
    command = shlex.join(["python", "-m", "scripts.benchmark_noise", *(argv if argv is not None else sys.argv[1:])])
    header = [
        f"# Noise robustness {'tuning on the validation split' if args.tune else 'benchmark'} ({name})",
        "",
        f"`{command}`: {len(args.seeds)} seed(s) {args.seeds}, {args.epochs} epochs ({args.warmup} warm-up for the",
        f"corrected methods), overrides {args.override or 'none'}; learning rate {args.lr_ce} for the methods without",
        f"DAR{''.join(f', {m} {lr}' for m, lr in args.method_lr.items())}. Training time of the {len(results)} runs:",
        f"{sum(r['train_s'] for r in results) / 60:.1f} min; wall time of this invocation: {elapsed / 60:.1f} min",
        "(it reuses finished runs). T_C error: mean row L1 distance of the learned T_C to the empirical transition",
        "of the noisy training labels (scripts.make_noisy's report), 0 to 2.",
        "",
    ]
    if args.tune:
        lines = ["Best validation mDice (%), model selection's own number; no test run.", ""]
        text = "\n".join(header + lines + tuning_rows(results, args.modes, args.methods)) + "\n"
    else:
        rows, summary = summarise(results, args.modes, args.methods)
        plot(summary, args.modes, args.methods, Path(f"{stem}.png"))
        header += [
            "Test split with clean labels, scores in % (mean ± std over seeds); "
            '"gap closed" is (method − CE) / (clean CE − CE) on mDice.',
            "",
        ]
        lines = header + rows + [""] + target_check(summary, args.modes)
        if any(p in args.methods for p in PEERS):
            lines += [""] + peer_check(summary, args.modes)
        lines += ["", "Validation (model selection) and learned T_C:", ""]
        text = "\n".join(lines + tuning_rows(results, args.modes, args.methods)) + "\n"
    Path(f"{stem}.md").write_text(text)
    print(text)
    print(f"written: {stem}.md, {stem}.csv" + ("" if args.tune else f", {stem}.png"))


if __name__ == "__main__":
    main()
