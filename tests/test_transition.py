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

import math

import pytest
import torch

from scripts.transition import (
    NoiseTransition,
    affinity_transition_from_class,
    soft_confusion,
    transition_from_confusion,
    transition_weight,
)


@pytest.mark.parametrize("num_classes", [2, 3, 4, 7])
def test_rows_sum_to_one_and_default_diagonal(num_classes):
    t = NoiseTransition(num_classes)()
    assert t.shape == (num_classes, num_classes)
    torch.testing.assert_close(t.sum(dim=1), torch.ones(num_classes))
    off = 1 / (1 + math.exp(2.0))  # sigmoid(-2)
    expected_diag = 1 / (1 + (num_classes - 1) * off)
    torch.testing.assert_close(torch.diagonal(t), torch.full((num_classes,), expected_diag))
    if num_classes == 4:
        assert abs(expected_diag - 0.7366) < 1e-4  # the value the method states


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
    # exact except the zero entry, clipped to 1e-4 of its diagonal: 0.7 * 1e-4 / (1 + 1e-4)
    expected = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [7e-5, 0.3, 0.7 - 7e-5]])
    torch.testing.assert_close(t.detach(), expected, atol=1e-6, rtol=1e-4)
    # a 50/50 row (off-diagonal equal to the diagonal) is reached up to the clip
    torch.testing.assert_close(
        NoiseTransition(2, [[0.5, 0.5], [0.0, 1.0]])().detach()[0], torch.tensor([0.5, 0.5]), atol=1e-4, rtol=0
    )


@pytest.mark.parametrize(
    "init, match",
    [
        ([[0.5, 0.5]], "must be"),
        ([[0.5, 0.6], [0.1, 0.9]], "rows summing to 1"),
        ([[1.2, -0.2], [0.1, 0.9]], "non-negative"),
        ([[0.0, 1.0], [0.1, 0.9]], "positive diagonal"),
    ],
)
def test_matrix_init_bad_values(init, match):
    with pytest.raises(ValueError, match=match):
        transition_weight(init, 2)


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


def test_soft_confusion_bad_inputs():
    with pytest.raises(ValueError, match="do not match"):
        soft_confusion(torch.rand(1, 2, 4, 4), torch.zeros(1, 1, 4, 5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="must lie in"):
        soft_confusion(torch.rand(1, 2, 2, 2), torch.full((1, 2, 2), 3), 2)
