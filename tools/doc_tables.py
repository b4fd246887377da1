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
"""The numbers of the README and the model card, generated from the benchmark files.

Usage::

    python -m tools.doc_tables            # rewrite every generated block of README.md and docs/README.md
    python -m tools.doc_tables --check    # exit 1 (and say which) when a block differs from its source

A generated block sits between ``<!-- generated: NAME ARGS -->`` and ``<!-- end generated -->``; NAME is one of
:data:`TABLES`, each rendered from committed files only: ``docs/benchmarks/robustness_runs.csv`` and
``robustness_paired.csv`` (``python -m benchmarks.robustness``), ``docs/benchmarks/label_cleaning.csv``,
``configs/metadata.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "docs" / "benchmarks"
DOCUMENTS = ("README.md", "docs/README.md")
BLOCK = re.compile(r"(<!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.DOTALL)
REFERENCE = "JCAS"
NO_CORRECTION_PEERS = ("CE", "Dice-CE", "GCE", "T-Loss", "ADELE")
MODE_NAMES = {
    "ellipse": "ellipse (boundaries redrawn)",
    "morph": "morph (eroded or dilated)",
    "symmetric": "symmetric 50 % (random flips)",
    "pairflip": "pair-flip 40 %",
    "confusion": "confusion (wrist as shaft 60 %)",
    "omission": "omission (parts left out, 30 %)",
    "model": "model (weak labeller's output)",
}


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def robustness_summary(dataset: str = "demo2d", root: Path = BENCHMARKS) -> str:
    """Per mode: the default's mDice, the best peer and the paired difference to it, and where the default stands
    against every peer (from the intervals of ``robustness_paired.csv``)."""
    runs = [r for r in _rows(root / "robustness_runs.csv") if r["dataset"] == dataset and r["mdice"]]
    paired = [r for r in _rows(root / "robustness_paired.csv") if r["dataset"] == dataset]
    if not runs:
        return "(no benchmark results yet)\n"
    reference = REFERENCE if any(r["method"] == REFERENCE for r in runs) else "JCAS (paper)"
    modes = [m for m in MODE_NAMES if any(r["mode"] == m for r in runs)]

    def score(method: str, mode: str) -> list[float]:
        return [float(r["mdice"]) for r in runs if (r["method"], r["mode"]) == (method, mode)]

    lines = [
        f"| noise ({dataset}) | {reference} | best other method | {reference} − it [95 % CI] | {reference} against all "
        "others | learned T_C error |",
        "|---|---|---|---|---|---|",
    ]
    for mode in modes:
        ours = score(reference, mode)
        others = {m: _mean(score(m, mode)) for m in {r["method"] for r in runs if r["mode"] == mode} - {reference}}
        if not ours or not others:
            continue
        best = max(others, key=others.get)
        row = next((p for p in paired if (p["mode"], p["method"]) == (mode, best)), None)
        diff = "-"
        if row:  # the CSV holds method − JCAS; the table shows JCAS − method
            diff = f"{-float(row['diff_vs_jcas']):+.1f} [{-float(row['ci_high']):+.1f}, {-float(row['ci_low']):+.1f}]"
        verdicts = [p["jcas"] for p in paired if p["mode"] == mode]
        stand = (
            "ahead of all"
            if verdicts and all(v == "ahead" for v in verdicts)
            else (
                "behind " + ", ".join(p["method"] for p in paired if p["mode"] == mode and p["jcas"] == "behind")
                if "behind" in verdicts
                else "never behind"
            )
        )
        errors = [
            float(r["t_class_error"])
            for r in runs
            if (r["method"], r["mode"]) == (reference, mode) and r["t_class_error"]
        ]
        error = f"{_mean(errors):.3f}" if errors else "-"
        seeds = len(ours)
        lines.append(
            f"| {MODE_NAMES[mode]} | {_mean(ours):.1f} | {best} {others[best]:.1f} | {diff} | {stand} | {error} |"
            + ("" if seeds > 1 else " ¹")
        )
    clean = {m: _mean(score(m, "clean")) for m in ("CE", "Dice-CE") if score(m, "clean")}
    if clean:
        best = max(clean, key=clean.get)
        lines += ["", f"Test mDice in %, {dataset}; clean-label ceiling: {best} {clean[best]:.1f}."]
    methods = sorted({r["method"] for r in runs if r["mode"] != "clean"} - {reference})
    note = "¹: one seed only (the interval then holds the spread over the test images alone)."
    lines += ["", f"Compared with: {', '.join(methods)}. {note}"]
    stale = sorted({r["method"] for r in runs if r.get("current") == "False"})
    if stale:
        count = sum(r.get("current") == "False" for r in runs)
        lines += [
            "",
            f"**Provisional**: {count} of the {len(runs)} runs ({', '.join(stale)}) were made under a stopping rule or "
            "settings the benchmark has since corrected, and are being retrained (`current` in the runs CSV).",
        ]
    return "\n".join(lines) + "\n"


def shipped_model() -> str:
    """The shipped model's test mDice and mJac, as ``configs/metadata.json`` states them (a test recomputes them)."""
    meta = json.loads((ROOT / "configs" / "metadata.json").read_text())
    metrics = meta["eval_metrics"]
    return (
        f"| demo test split (clean labels) | mDice {100 * metrics['mean_dice']:.1f} % | "
        f"mJac {100 * metrics['mean_jaccard']:.1f} % |\n|---|---|---|\n"
    )


def label_cleaning(root: Path = BENCHMARKS) -> str:
    """Per mode and method: precision at k, AUROC, and the Dice of the given and corrected labels (seed means)."""
    rows = _rows(root / "label_cleaning.csv")
    if not rows:
        return "(no label-cleaning results yet)\n"
    lines = ["| noise | method | precision at k | AUROC | Dice given → corrected |", "|---|---|---|---|---|"]
    keys = sorted({(r["mode"], r["method"]) for r in rows}, key=lambda k: (k[0], k[1] != "ours", k[1]))
    for mode, method in keys:
        group = [r for r in rows if (r["mode"], r["method"]) == (mode, method)]
        mean = {
            k: _mean([float(r[k]) for r in group]) for k in ("precision_at_k", "auroc", "dice_given", "dice_corrected")
        }
        lines.append(
            f"| {mode} | {method} | {mean['precision_at_k']:.2f} | {mean['auroc']:.2f} | "
            f"{100 * mean['dice_given']:.1f} → {100 * mean['dice_corrected']:.1f} |"
        )
    return "\n".join(lines) + "\n"


TABLES: dict[str, Callable[..., str]] = {
    "robustness-summary": robustness_summary,
    "shipped-model": shipped_model,
    "label-cleaning": label_cleaning,
}


def render(spec: str) -> str:
    """The body of the block ``spec`` ("NAME ARG ...")."""
    name, *args = spec.split()
    if name not in TABLES:
        raise ValueError(f"unknown generated table '{name}': expected one of {sorted(TABLES)}")
    return TABLES[name](*args)


def update(text: str) -> str:
    """``text`` with every generated block re-rendered."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("spec")) + m.group(4), text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report blocks that differ from their source")
    args = parser.parse_args(argv)
    stale = []
    for name in DOCUMENTS:
        path = ROOT / name
        text = path.read_text()
        new = update(text)
        if new != text:
            stale.append(name)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"generated tables differ from the benchmark files in {stale}: run python -m tools.doc_tables")
        return 1
    print(("rewrote " if stale else "up to date: ") + ", ".join(stale or DOCUMENTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
