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
"""The paired mDice difference of ``benchmarks/paired_stats.py``: the paper's metric, the interval's coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmarks.paired_stats import mdice, paired_difference, verdict

NAN = np.nan


def test_mdice_averages_each_class_over_the_images_that_contain_it():
    per_image = np.array([[0.8, NAN], [0.6, 0.5], [NAN, 0.7]])
    assert mdice(per_image) == pytest.approx(np.mean([0.7, 0.6]))
    assert mdice(per_image, weights=np.array([2, 1, 0])) == pytest.approx(np.mean([(1.6 + 0.6) / 3, 0.5]))
    assert np.isnan(mdice(np.full((2, 2), NAN)))


def test_identical_methods_differ_by_zero_with_a_zero_width_interval():
    rng = np.random.default_rng(0)
    runs = {s: rng.uniform(0.4, 0.9, (20, 3)) for s in range(3)}
    diff = paired_difference(runs, runs)
    assert (diff.diff, diff.low, diff.high) == (0.0, 0.0, 0.0) and diff.seeds == 3 and diff.images == 20
    assert verdict(diff) == "level"


def test_one_seed_interval_is_the_image_bootstrap():
    """One seed, a constant per-image gain of 0.05 on top of noise: the interval is centred on the gain and its
    width is that of the mean of the per-image differences (about 1.96 σ / sqrt(n))."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.9, (400, 1))
    noise = rng.normal(0, 0.1, (400, 1))
    diff = paired_difference({0: base + 0.05 + noise}, {0: base}, num_boot=4000)
    assert diff.diff == pytest.approx(0.05 + noise.mean())
    assert diff.high - diff.low == pytest.approx(2 * 1.96 * noise.std() / np.sqrt(400), rel=0.1)
    assert verdict(diff) == "ahead"


def test_seed_spread_widens_the_interval_with_t_quantiles():
    """Same images, the difference varies only from seed to seed: the interval is the t interval of the seed means."""
    per_seed = [0.02, 0.05, 0.08]
    ones = np.ones((10, 2)) * 0.5
    a = {s: ones + d for s, d in enumerate(per_seed)}
    b = {s: ones for s in range(3)}
    diff = paired_difference(a, b)
    half = stats.t.ppf(0.975, 2) * np.std(per_seed, ddof=1) / np.sqrt(3)
    assert diff.diff == pytest.approx(0.05) and diff.high - diff.diff == pytest.approx(half)
    assert diff.per_seed == pytest.approx(tuple(per_seed))


def test_interval_covers_the_true_difference_about_95_percent_of_the_time():
    """Simulated benchmarks (images drawn from a population, each seed adds its own training noise): the interval
    of the paired difference holds the population difference in about 95 % of 200 repetitions."""
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(200):
        images = rng.uniform(0.3, 0.9, (40, 2))
        gain = rng.normal(0.02, 0.03, (40, 2))  # per-image effect, population mean 0.02
        a = {s: images + gain + rng.normal(0, 0.01) + rng.normal(0, 0.02, (40, 2)) for s in range(3)}
        b = {s: images + rng.normal(0, 0.01) + rng.normal(0, 0.02, (40, 2)) for s in range(3)}
        diff = paired_difference(a, b, num_boot=400, seed=int(rng.integers(1 << 30)))
        covered += diff.low <= 0.02 <= diff.high
    assert 0.88 <= covered / 200 <= 0.99


def test_no_common_seed_is_refused():
    with pytest.raises(ValueError, match="no common seed"):
        paired_difference({0: np.ones((2, 1))}, {1: np.ones((2, 1))})
