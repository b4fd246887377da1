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
"""``benchmarks/label_cleaning.py``: the ``clean_min_score`` sweep and which results are reused."""

from __future__ import annotations

import pytest

from benchmarks.label_cleaning import BUDGET, _stale_line, clean_settings, is_current, min_score_sweep


def _case(score: float, corrupted: bool, given: float, corrected: float) -> dict:
    return {
        "scores": {"ours": score},
        "corrupted": corrupted,
        "dice_given": given,
        "dice_corrected": {"ours": corrected},
    }


def test_the_sweep_keeps_the_given_label_of_cases_under_the_value():
    """Four cases: two corrupted (gains +0.2, +0.1), two clean (losses -0.04, -0.02); by hand per value."""
    cases = [_case(0.30, True, 0.6, 0.8), _case(0.12, True, 0.7, 0.8), _case(0.08, False, 1.0, 0.96)]
    cases.append(_case(0.01, False, 1.0, 0.98))
    rows = min_score_sweep({"mode": "morph", "seed": 100, "cases": cases}, [0.0, 0.1, 0.2])
    assert [r["corrected_cases"] for r in rows] == [4, 2, 1]
    assert [r["gain"] for r in rows] == pytest.approx([(0.2 + 0.1 - 0.04 - 0.02) / 4, 0.3 / 4, 0.2 / 4])
    assert [r["gain_corrupted"] for r in rows] == pytest.approx([0.15, 0.15, 0.1])


def test_results_of_another_budget_or_cleaning_setting_are_not_current():
    current = {"mode": "ellipse", "seed": 0, "budget": dict(BUDGET), "clean_settings": clean_settings()}
    assert is_current(current) and _stale_line([current]) == []
    old_budget = {**current, "budget": {**BUDGET, "max_epochs": 40}}
    old_cleaning = {**current, "clean_settings": {**clean_settings(), "clean_min_score": 0.0}}
    assert not is_current(old_budget) and not is_current(old_cleaning)
    assert "2 of 3 results" in _stale_line([current, old_budget, old_cleaning])[0]
