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
"""The README's and the card's numbers are the benchmark files' (``tools/doc_tables.py``)."""

from __future__ import annotations

import csv
from pathlib import Path

from tools import doc_tables


def test_every_generated_block_equals_its_source():
    """Fails when a benchmark CSV changed and the docs were not regenerated (``python -m tools.doc_tables``), or a
    generated table was edited by hand."""
    for name in doc_tables.DOCUMENTS:
        text = (doc_tables.ROOT / name).read_text()
        assert doc_tables.update(text) == text, f"{name}: run python -m tools.doc_tables"
    assert doc_tables.main(["--check"]) == 0


def test_robustness_summary_reads_the_paired_intervals(tmp_path: Path):
    def write(name: str, rows: list[dict]) -> None:
        with open(tmp_path / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    run = {"dataset": "demo2d", "seed": "0", "t_class_error": ""}
    write(
        "robustness_runs.csv",
        [
            {**run, "mode": "confusion", "method": "JCAS", "mdice": "80.0", "t_class_error": "0.02"},
            {**run, "mode": "confusion", "method": "Dice-CE", "mdice": "75.0"},
            {**run, "mode": "confusion", "method": "CE", "mdice": "60.0"},
            {**run, "mode": "clean", "method": "Dice-CE", "mdice": "85.0"},
        ],
    )
    pair = {"dataset": "demo2d", "mode": "confusion", "seeds": "1", "n_test": "64"}
    write(
        "robustness_paired.csv",
        [
            {**pair, "method": "Dice-CE", "diff_vs_jcas": "-5.0", "ci_low": "-7.0", "ci_high": "-3.0", "jcas": "ahead"},
            {**pair, "method": "CE", "diff_vs_jcas": "-20.0", "ci_low": "-24.0", "ci_high": "-16.0", "jcas": "ahead"},
        ],
    )
    table = doc_tables.robustness_summary("demo2d", tmp_path)
    row = "| confusion (wrist as shaft 60 %) | 80.0 | Dice-CE 75.0 | +5.0 [+3.0, +7.0] | ahead of all | 0.020 | ¹"
    assert row in table.splitlines()
    assert "clean-label ceiling: Dice-CE 85.0." in table
    assert "Provisional" not in table

    rows = list(csv.DictReader(open(tmp_path / "robustness_runs.csv")))
    write("robustness_runs.csv", [{**r, "current": "False" if r["method"] == "CE" else "True"} for r in rows])
    assert "**Provisional**: 1 of the 4 runs (CE) were made under" in doc_tables.robustness_summary("demo2d", tmp_path)


def test_an_unknown_table_is_refused():
    import pytest

    with pytest.raises(ValueError, match="unknown generated table 'nope'"):
        doc_tables.render("nope")
