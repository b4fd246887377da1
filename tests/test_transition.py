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
import math
from pathlib import Path

import pytest
import torch
from scripts.transition import (
    NoiseTransition,
    affinity_transition_from_class,
    anchor_transition,
    read_transition,
    soft_confusion,
    transition_error,
    transition_from_confusion,
    transition_weight,
)

from benchmarks.transition import DEMO_PRIOR, learn_transition, noise_matrix, synthetic_posteriors

BUNDLE_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("num_classes", [2, 3, 4, 7])
def test_rows_sum_to_one_and_default_diagonal(num_classes):
    t = NoiseTransition(num_classes)()
    assert t.shape == (num_classes, num_classes)
    torch.testing.assert_close(t.sum(dim=1), torch.ones(num_classes))
    expected_diag = 1 / (1 + (num_classes - 1) * math.exp(-4.0))  # softmax of a row [0, -4, -4, ...]
    torch.testing.assert_close(torch.diagonal(t), torch.full((num_classes,), expected_diag))
    if num_classes == 4:
        assert abs(expected_diag - 0.9479) < 1e-4


def test_rows_stay_stochastic_after_training_steps():
    module = NoiseTransition(4)
    opt = torch.optim.SGD(module.parameters(), lr=10.0)
    target = torch.rand(4, 4)
    for _ in range(5):
        opt.zero_grad()
        ((module() - target) ** 2).sum().backward()
        opt.step()
    t = module()
    torch.testing.assert_close(t.sum(dim=1), torch.ones(4))
    assert t.min() > 0
    assert not torch.allclose(t, NoiseTransition(4)())  # it learned


def test_bad_size():
    with pytest.raises(ValueError, match="num_classes"):
        NoiseTransition(1)


def test_affinity_transition_hand_value():
    # π = (.5, .5), T_C = [[.8, .2], [.3, .7]]: s = .5, v11 = .315, v01 = .505 - .315, v10 = .185, v00 = .31
    t_class = torch.tensor([[0.8, 0.2], [0.3, 0.7]])
    t_aff = affinity_transition_from_class(t_class, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(t_aff, torch.tensor([[0.62, 0.38], [0.37, 0.63]]))


def test_affinity_transition_identity():
    prior = torch.tensor([0.7, 0.1, 0.15, 0.05])
    torch.testing.assert_close(affinity_transition_from_class(torch.eye(4), prior), torch.eye(2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affinity_transition_matches_monte_carlo(seed):
    gen = torch.Generator().manual_seed(seed)
    num_classes, samples = 4, 400_000
    t_class = NoiseTransition(num_classes, init=0.0)
    with torch.no_grad():
        t_class.weight.normal_(generator=gen)
    t_class = t_class().detach()
    prior = torch.rand(num_classes, generator=gen) + 0.2
    prior = prior / prior.sum()
    clean = torch.multinomial(prior, 2 * samples, replacement=True, generator=gen).view(2, samples)
    noisy = torch.multinomial(t_class[clean.flatten()], 1, generator=gen).view(2, samples)
    clean_same, noisy_same = clean[0] == clean[1], noisy[0] == noisy[1]
    simulated = torch.tensor(
        [
            [(~noisy_same[~clean_same]).float().mean(), noisy_same[~clean_same].float().mean()],
            [(~noisy_same[clean_same]).float().mean(), noisy_same[clean_same].float().mean()],
        ]
    )
    expected = affinity_transition_from_class(t_class, prior)
    # binomial standard error of each row's estimate; 5 sigma
    rows = torch.tensor([(~clean_same).sum(), clean_same.sum()]).float()
    sigma = (expected * (1 - expected) / rows[:, None]).sqrt()
    assert torch.all((simulated - expected).abs() < 5 * sigma + 1e-6), (simulated, expected)


def test_affinity_transition_is_differentiable_in_t_class():
    module = NoiseTransition(3)
    t_aff = affinity_transition_from_class(module(), torch.tensor([0.6, 0.3, 0.1]))
    t_aff[1, 1].backward()
    assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "t_class,prior,match",
    [
        (torch.eye(3), torch.ones(4), "prior"),
        (torch.ones(3, 2), torch.ones(3), "square"),
        (torch.eye(3), torch.tensor([1.0, 0.0, 0.0]), "two classes"),
    ],
)
def test_bad_arguments(t_class, prior, match):
    with pytest.raises(ValueError, match=match):
        affinity_transition_from_class(t_class, prior)


def test_matrix_init_reproduces_a_known_transition():
    known = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.0, 0.3, 0.7]])
    t = NoiseTransition(3, known.tolist())()
    # exact except the zero entry, floored at 1e-4 before the log: row 2 is [1e-4, 0.3, 0.7] / 1.0001
    expected = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [1e-4, 0.3, 0.7]]) / torch.tensor([[1], [1], [1.0001]])
    torch.testing.assert_close(t.detach(), expected, atol=1e-6, rtol=1e-5)


def test_rows_whose_off_diagonal_exceeds_the_diagonal_are_reachable():
    # systematic confusion: class 1 labelled 0 60 % of the time; the published sigmoid form caps 0.6 at the diagonal
    known = torch.tensor([[1.0, 0.0], [0.6, 0.4]])
    torch.testing.assert_close(NoiseTransition(2, known)().detach(), known, atol=2e-4, rtol=0)


@pytest.mark.parametrize(
    "init, match",
    [
        ([[0.5, 0.5]], r"^transition_init: expected a number or a \(2, 2\) transition matrix, got shape \(1, 2\)$"),
        ([[0.5, 0.6], [0.1, 0.9]], r"^transition_init: expected a row-stochastic .* row sums \[1\.1, 1\.0\]$"),
        ([[1.2, -0.2], [0.1, 0.9]], r"^transition_init: .*\(entries non-negative, rows summing to 1\), got \[\[1\.2"),
        ([[float("nan"), 1.0], [0.1, 0.9]], r"^transition_init: expected a row-stochastic .*got \[\[nan, 1\.0\]"),
    ],
)
def test_matrix_init_bad_values(init, match):
    with pytest.raises(ValueError, match=match):
        transition_weight(init, 2)
    with pytest.raises(ValueError, match=match.replace("transition_init", "T_C")):
        transition_weight(init, 2, key="T_C")


def test_anchor_transition_hand_value():
    # 6 pixels, prior (0.5, 0.5), top_fraction 1/3: k = 1 pixel per class, the one with the largest p_i
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7], [0.45, 0.55]])
    estimate = anchor_transition(probs, torch.tensor([0.5, 0.5]), top_fraction=1 / 3)
    torch.testing.assert_close(estimate, torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    # top_fraction 2/3: k = 2, the mean of the two most likely pixels of each class
    estimate = anchor_transition(probs, torch.tensor([0.5, 0.5]), top_fraction=2 / 3)
    torch.testing.assert_close(estimate, torch.tensor([[0.8, 0.2], [0.25, 0.75]]))


def test_anchor_transition_bad_arguments():
    with pytest.raises(ValueError, match="top_fraction"):
        anchor_transition(torch.rand(4, 2), torch.ones(2), top_fraction=0.0)
    with pytest.raises(ValueError, match="expected"):
        anchor_transition(torch.rand(4, 2), torch.ones(3))


@pytest.mark.parametrize("mode", ["symmetric 50 %", "pair-flip 40 %", "confusion 60 % (class 2 as 1)"])
@pytest.mark.parametrize("prior", [(0.25, 0.25, 0.25, 0.25), DEMO_PRIOR])
def test_default_settings_recover_a_known_transition(mode, prior):
    """train.json's transition_init, transition_lr (Adam) and lambda_volume learn a known T_C with the network
    fixed at calibrated clean posteriors (the controlled experiment of benchmarks.transition, smaller)."""
    config = json.loads((BUNDLE_ROOT / "configs" / "train.json").read_text())
    t_true = noise_matrix(mode)
    logits, noisy = synthetic_posteriors(torch.tensor(prior), t_true, pixels=4096)
    start = NoiseTransition(4, config["transition_init"])().detach()
    learned = learn_transition(
        logits, noisy, config["transition_init"], config["transition_lr"], config["lambda_volume"], steps=400
    )
    assert transition_error(start, t_true) > 0.3
    assert transition_error(learned, t_true) < 0.1
    noisy_probs = torch.softmax(logits[0].T, dim=1) @ t_true
    assert transition_error(anchor_transition(noisy_probs, torch.bincount(noisy[0], minlength=4).float()), t_true) < 0.1


def test_read_transition(tmp_path):
    matrix = [[0.9, 0.1], [0.2, 0.8]]
    assert read_transition(None) is None
    torch.testing.assert_close(read_transition(matrix), torch.tensor(matrix))
    report = tmp_path / "noise_report.json"
    report.write_text(json.dumps({"overall": {"transition": matrix}}))
    torch.testing.assert_close(read_transition(str(report)), torch.tensor(matrix))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="holds no matrix"):
        read_transition(str(tmp_path / "other.json"))
    with pytest.raises(FileNotFoundError, match="reference_transition"):
        read_transition(str(tmp_path / "missing.json"))


def test_soft_confusion_hand_value():
    # two pixels of clean class 0 predicted (.9, .1) and (.5, .5); one of class 1 predicted (.2, .8); one ignored
    probs = torch.tensor([[0.9, 0.5, 0.2, 0.3], [0.1, 0.5, 0.8, 0.7]]).view(1, 2, 2, 2)
    labels = torch.tensor([0, 0, 1, 9]).view(1, 1, 2, 2)
    sums = soft_confusion(probs, labels, 2, ignore_index=9)
    torch.testing.assert_close(sums, torch.tensor([[1.4, 0.6], [0.2, 0.8]], dtype=torch.float64))
    torch.testing.assert_close(transition_from_confusion(sums), torch.tensor([[0.7, 0.3], [0.2, 0.8]]))


def test_transition_from_confusion_keeps_identity_for_unseen_classes():
    sums = torch.tensor([[2.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 3.0]])
    expected = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.25, 0.0, 0.75]])
    torch.testing.assert_close(transition_from_confusion(sums), expected)


def test_diverged_posteriors_are_refused():
    probs = torch.full((6, 3), 1 / 3)
    probs[2, 1] = float("nan")
    probs[4, 0] = float("inf")
    with pytest.raises(ValueError, match=r"^anchor_transition: 2 of 18 class posteriors are NaN or infinite: the "):
        anchor_transition(probs, torch.tensor([0.5, 0.3, 0.2]))
    maps = probs.T.reshape(1, 3, 2, 3)
    with pytest.raises(ValueError, match=r"^soft_confusion: 2 of 18 .*: the network diverged \(lower learning_rate"):
        soft_confusion(maps, torch.zeros(1, 1, 2, 3, dtype=torch.long), 3)


def test_soft_confusion_bad_inputs():
    with pytest.raises(ValueError, match="do not match"):
        soft_confusion(torch.rand(1, 2, 4, 4), torch.zeros(1, 1, 4, 5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="must lie in"):
        soft_confusion(torch.rand(1, 2, 2, 2), torch.full((1, 2, 2), 3), 2)
