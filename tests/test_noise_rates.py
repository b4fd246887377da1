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
"""Tests of scripts/noise_rates.py: exact counts against an O(N^2) brute force, sampled estimate, golden values,
confusion table and empirical transition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scripts.noise import SimulateLabelNoise
from scripts.noise_rates import confusion_matrix, empirical_transition, noise_rates, pair_counts


def brute_force(noisy: np.ndarray, clean: np.ndarray, ignore_index: int | None = None) -> dict[str, float]:
    """The definitions, with the N x N same-class matrices: ordered pairs i != j of non-ignored pixels."""
    noisy, clean = noisy.ravel(), clean.ravel()
    if ignore_index is not None:
        keep = (noisy != ignore_index) & (clean != ignore_index)
        noisy, clean = noisy[keep], clean[keep]
    off_diagonal = ~np.eye(noisy.size, dtype=bool)
    same_clean = (clean[:, None] == clean[None, :]) & off_diagonal
    same_noisy = (noisy[:, None] == noisy[None, :]) & off_diagonal
    diff_clean = ~same_clean & off_diagonal
    return {
        "pixel": float((noisy != clean).mean()),
        "affinity": float((same_clean != same_noisy).sum() / off_diagonal.sum()),
        "affinity_same_to_diff": float((same_clean & ~same_noisy).sum() / same_clean.sum()),
        "affinity_diff_to_same": float((diff_clean & same_noisy).sum() / diff_clean.sum()),
    }


@pytest.mark.parametrize("mode", ["ellipse", "morph", "symmetric", "asymmetric", "transition"])
@pytest.mark.parametrize("ignore_index", [None, 9])
def test_exact_equals_brute_force(mode: str, ignore_index: int | None) -> None:
    clean = np.zeros((1, 18, 22), dtype=np.int64)
    clean[0, 3:12, 4:15], clean[0, 10:16, 12:20], clean[0, 1:4, 16:21] = 1, 2, 3
    if ignore_index is not None:
        clean[0, :, :2] = ignore_index
    transition = [[0.7, 0.1, 0.1, 0.1], [0.2, 0.6, 0.2, 0], [0, 0.5, 0.5, 0], [0, 0, 0.3, 0.7]]
    extra = {"transition": transition} if mode == "transition" else {}
    noisy = SimulateLabelNoise(mode, 4, radius=(1, 2), ignore_index=ignore_index, **extra).set_random_state(0)(clean)
    assert (noisy != clean).any()
    rates = noise_rates(noisy, clean, 4, ignore_index)
    expected = brute_force(noisy, clean, ignore_index)
    for key, value in expected.items():
        assert rates[key] == pytest.approx(value, abs=1e-12), key
    assert rates["exact"] and rates["num_pixels"] == (clean != ignore_index).sum()


@pytest.mark.parametrize("num_pairs", [2_000, 20_000])
def test_sampled_estimate_within_tolerance(num_pairs: int) -> None:
    clean = np.random.default_rng(0).integers(0, 4, (1, 60, 60))
    noisy = SimulateLabelNoise("symmetric", 4, rate=0.3).set_random_state(0)(clean)
    exact = noise_rates(noisy, clean, 4)["affinity"]
    sampled = noise_rates(noisy, clean, 4, num_pairs=num_pairs, seed=1)
    assert not sampled["exact"] and sampled["num_pairs"] == num_pairs
    assert abs(sampled["affinity"] - exact) < 4 * np.sqrt(exact * (1 - exact) / num_pairs)
    assert sampled == noise_rates(noisy, clean, 4, num_pairs=num_pairs, seed=1)  # seeded


@pytest.mark.parametrize(
    "noisy, clean, pixel, affinity",
    [
        ([0, 0, 1, 1], [0, 0, 1, 1], 0.0, 0.0),  # clean labels
        ([1, 1, 0, 0], [0, 0, 1, 1], 1.0, 0.0),  # classes swapped: every pixel wrong, every relation right
        ([0, 0, 0, 0], [0, 0, 1, 1], 0.5, 8 / 12),  # merged: the 8 ordered cross pairs become "same"
        ([0, 1, 2, 3], [0, 0, 0, 0], 0.75, 1.0),  # split into singletons: every "same" pair becomes "different"
    ],
)
def test_golden_values(noisy: list[int], clean: list[int], pixel: float, affinity: float) -> None:
    rates = noise_rates(np.array(noisy), np.array(clean), 4)
    assert rates["pixel"] == pytest.approx(pixel) and rates["affinity"] == pytest.approx(affinity)


def test_per_class_confusion_and_counts() -> None:
    clean = torch.tensor([[0, 0, 0, 0, 1, 1, 2, 2]])
    noisy = torch.tensor([[0, 0, 1, 1, 1, 0, 2, 2]])
    rates = noise_rates(noisy, clean, num_classes=4)
    assert rates["per_class"] == [0.5, 0.5, 0.0, None]
    assert rates["confusion"] == [[2, 2, 0, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    assert rates["pixels_changed"] == 3 and rates["num_pixels"] == 8 and rates["num_pairs"] == 56
    assert pair_counts(np.array(rates["confusion"]))[3] == 56


def test_confusion_matrix_hand_values_and_ignore_index() -> None:
    clean = np.array([[0, 0, 0, 1, 1, 2, 9, 2]])
    noisy = np.array([[0, 1, 1, 1, 0, 2, 2, 9]])  # the last two pixels are ignored (9 in either map)
    confusion = confusion_matrix(noisy, clean, 4, ignore_index=9)
    np.testing.assert_array_equal(confusion, [[1, 2, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert confusion.dtype == np.int64
    assert noise_rates(noisy, clean, 4, 9)["confusion"] == confusion.tolist()
    assert confusion_matrix(torch.as_tensor(noisy), torch.as_tensor(clean), 4, 9).tolist() == confusion.tolist()
    assert confusion_matrix(np.array([0, 2]), np.array([0, 1])).shape == (3, 3)  # C inferred: max label + 1
    with pytest.raises(ValueError, match=r"noisy values in 0\.\.3, got 0\.\.9"):
        confusion_matrix(noisy, clean, 4)  # 9 is a value, not ignored


def test_empirical_transition_rows_and_absent_classes() -> None:
    confusion = [[1, 2, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    expected = [[1 / 3, 2 / 3, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]  # class 3 absent: identity row
    np.testing.assert_allclose(empirical_transition(confusion), expected)
    np.testing.assert_array_equal(empirical_transition(np.zeros((2, 2), dtype=int)), np.eye(2))
    for bad in ([[1, 2, 3]], [[1, -1], [0, 1]], [1, 2]):
        with pytest.raises(ValueError, match="C x C table"):
            empirical_transition(bad)


def test_num_classes_inferred_and_empty_input() -> None:
    assert len(noise_rates(np.array([0, 2]), np.array([0, 1]))["per_class"]) == 3
    empty = noise_rates(np.full(4, 7), np.full(4, 7), ignore_index=7)
    assert empty["pixel"] == 0.0 and empty["affinity"] == 0.0 and empty["num_pixels"] == 0


@pytest.mark.parametrize(
    "noisy, clean, num_classes, match",
    [
        (np.zeros((1, 4, 4)), np.zeros((1, 4, 5)), None, "shape"),
        (np.zeros((2, 3)), np.zeros((3, 2)), None, "shape"),
        (np.full(5, 4), np.zeros(5), 4, "noisy values in 0..3"),
        (np.zeros(5), np.full(5, -1), 4, "clean values in 0..3"),
    ],
)
def test_ill_inputs(noisy: np.ndarray, clean: np.ndarray, num_classes: int | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        noise_rates(noisy, clean, num_classes)
