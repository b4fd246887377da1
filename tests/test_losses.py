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

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from scripts.losses import (
    CALCLoss,
    affinity_bce,
    affinity_consistency,
    bounded_nll,
    class_prior,
    forward_corrected_dice,
    forward_corrected_nll,
    transition_log_volume,
)
from scripts.transition import NoiseTransition, affinity_transition_from_class

T_CLASS = torch.tensor([[0.8, 0.2], [0.3, 0.7]])
T_AFFINITY = torch.tensor([[0.9, 0.1], [0.2, 0.8]])


def two_pixel_embedding() -> torch.Tensor:
    """B=1, D=2, grid 1x2: f_1 = (1, 0), f_2 = (.6, .8), so a_12 = .6 and a_11 = a_22 = 1."""
    return torch.tensor([[[[1.0, 0.6]], [[0.0, 0.8]]]])


def test_forward_corrected_nll_hand_value():
    logits = torch.zeros(1, 2, 1, 1)  # softmax = (.5, .5), corrected = (.55, .45)
    target = torch.ones(1, 1, 1, dtype=torch.long)
    torch.testing.assert_close(forward_corrected_nll(logits, target, T_CLASS), torch.tensor(-math.log(0.45)))


def test_forward_corrected_nll_identity_is_cross_entropy():
    logits, target = torch.randn(2, 4, 5, 6), torch.randint(0, 4, (2, 5, 6))
    expected = F.cross_entropy(logits, target)
    torch.testing.assert_close(forward_corrected_nll(logits, target, torch.eye(4)), expected)
    torch.testing.assert_close(forward_corrected_nll(logits, target, None), expected)


def test_forward_corrected_nll_ignore_index():
    logits = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[1, 255]]])
    torch.testing.assert_close(
        forward_corrected_nll(logits, target, T_CLASS, ignore_index=255), torch.tensor(-math.log(0.45))
    )


def two_pixel_dice_case() -> tuple[torch.Tensor, torch.Tensor, float]:
    """Logits with softmax (.8, .2) and (.4, .6), labels (0, 1), and the Dice loss after ``T_CLASS``.

    Corrected probabilities (.8 .8 + .2 .3, .8 .2 + .2 .7) = (.7, .3) and (.4 .8 + .6 .3, .4 .2 + .6 .7) = (.5, .5);
    class 0: TP .7, prediction 1.2, label 1; class 1: TP .5, prediction .8, label 1; MONAI's smoothing 1e-5.
    """
    logits = torch.log(torch.tensor([[0.8, 0.4], [0.2, 0.6]])).view(1, 2, 1, 2)
    smooth = 1e-5
    dice = [(2 * 0.7 + smooth) / (1.2 + 1 + smooth), (2 * 0.5 + smooth) / (0.8 + 1 + smooth)]
    return logits, torch.tensor([[[0, 1]]]), 1 - sum(dice) / 2


def test_forward_corrected_dice_hand_value():
    logits, target, expected = two_pixel_dice_case()
    torch.testing.assert_close(forward_corrected_dice(logits, target, T_CLASS), torch.tensor(expected))
    # uncorrected: class 0 TP .8, prediction 1.2; class 1 TP .6, prediction .8
    plain = 1 - ((1.6 + 1e-5) / (2.2 + 1e-5) + (1.2 + 1e-5) / (1.8 + 1e-5)) / 2
    torch.testing.assert_close(forward_corrected_dice(logits, target), torch.tensor(plain))
    torch.testing.assert_close(forward_corrected_dice(logits, target, torch.eye(2)), torch.tensor(plain))


def test_forward_corrected_dice_ignore_index():
    logits, target, expected = two_pixel_dice_case()
    # a third pixel, labelled 255 and predicted confidently as class 1, counts neither as prediction nor as label
    logits = torch.cat([logits, torch.tensor([-9.0, 9.0]).view(1, 2, 1, 1)], dim=3)
    target = torch.cat([target, torch.tensor([[[255]]])], dim=2)
    dice = forward_corrected_dice(logits, target, T_CLASS, ignore_index=255)
    torch.testing.assert_close(dice, torch.tensor(expected))


def test_forward_corrected_dice_moves_the_transition():
    # the rare class's pixels are labelled as the common class: a T_C that explains this lowers the corrected Dice
    logits, target, _ = two_pixel_dice_case()
    weight = torch.zeros(2, 2, requires_grad=True)
    t_class = torch.softmax(weight, dim=1)
    forward_corrected_dice(logits, torch.zeros_like(target), t_class).backward()
    assert weight.grad[1, 0] < 0 < weight.grad[1, 1]  # gradient descent moves class 1's row towards label 0


def test_affinity_bce_hand_value():
    target = torch.tensor([[[0, 1]]])
    # same pairs (1,1), (2,2): a = 1, p' = T_A[1,1] = .8; different pairs (1,2), (2,1): a = .6,
    # p' = .1 + .6 (.8 - .1) = .52 and BCE = -log(1 - .52)
    expected = (2 * -math.log(0.8) + 2 * -math.log(0.48)) / 4
    torch.testing.assert_close(affinity_bce(two_pixel_embedding(), target, T_AFFINITY), torch.tensor(expected))
    # uncorrected: p' = a, so only the different pairs cost: -log(1 - .6)
    torch.testing.assert_close(affinity_bce(two_pixel_embedding(), target), torch.tensor(2 * -math.log(0.4) / 4))


def test_affinity_bce_ignore_masks_pairs():
    embedding = torch.tensor([[[[1.0, 0.6, 0.0]], [[0.0, 0.8, 1.0]]]])
    target = torch.tensor([[[0, 1, 7]]])
    torch.testing.assert_close(
        affinity_bce(embedding, target, T_AFFINITY, ignore_index=7),
        affinity_bce(two_pixel_embedding(), target[..., :2], T_AFFINITY),
    )


def random_case(batch=2, grid=(6, 7), channels=5, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    embedding = torch.relu(torch.randn(batch, channels, *grid, generator=gen, dtype=torch.float64))
    embedding = (embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-9)).requires_grad_()
    target = torch.randint(0, classes, (batch, *grid), generator=gen)
    return embedding, target


@pytest.mark.parametrize("chunk_size", [1, 5, 17, 42, 1000])
def test_chunked_equals_unchunked_values_and_gradients(chunk_size):
    embedding, target = random_case()
    t_aff = T_AFFINITY.clone().double().requires_grad_()
    full = affinity_bce(embedding, target, t_aff, chunk_size=10_000)
    chunked = affinity_bce(embedding, target, t_aff, chunk_size=chunk_size)
    torch.testing.assert_close(chunked, full)
    g_full = torch.autograd.grad(full, (embedding, t_aff))
    g_chunked = torch.autograd.grad(chunked, (embedding, t_aff))
    for a, b in zip(g_full, g_chunked, strict=True):
        torch.testing.assert_close(a, b)


def test_affinity_bce_equals_explicit_pair_loop():
    embedding, target = random_case(batch=1, grid=(3, 4), seed=3)
    f = embedding[0].flatten(1).T
    y = target[0].flatten()
    losses = []
    for i in range(len(y)):
        for j in range(len(y)):
            a = float((f[i] @ f[j]).detach())
            p = 0.1 + a * (0.8 - 0.1)
            losses.append(-math.log(p if y[i] == y[j] else 1 - p))
    torch.testing.assert_close(affinity_bce(embedding, target, T_AFFINITY), torch.tensor(np.mean(losses)).double())


def test_sampled_pairs_are_unbiased():
    embedding, target = random_case(batch=2, grid=(8, 8), seed=4)
    exact = affinity_bce(embedding, target, T_AFFINITY).item()
    torch.manual_seed(0)
    estimates = torch.tensor([affinity_bce(embedding, target, T_AFFINITY, num_pairs=256).item() for _ in range(200)])
    standard_error = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - exact) < 4 * standard_error
    assert estimates.std() > 0


def test_sampled_pairs_never_touch_ignored_pixels():
    """On a 3D grid, the valid voxels share one label and one embedding (a = 1: every valid pair costs -log T_A[1,1]
    = -log .8); the ignored ones are orthogonal to them (a pair with one would cost -log .9 or -log .1). Any pair
    drawn with an ignored voxel, or the fully ignored third image, would move the estimate off -log .8 and give the
    ignored embedding a gradient."""
    embedding = torch.zeros(3, 2, 3, 4, 5, dtype=torch.float64)
    target = torch.full((3, 3, 4, 5), 255)
    target[0, :2], target[1, :, :1] = 1, 1  # 40 and 15 valid voxels; none in the third image
    valid = target != 255
    embedding[:, 0][valid], embedding[:, 1][~valid] = 1.0, 1.0
    embedding.requires_grad_()
    torch.manual_seed(0)
    loss = affinity_bce(embedding, target, T_AFFINITY, ignore_index=255, num_pairs=4096)
    torch.testing.assert_close(loss, torch.tensor(-math.log(0.8), dtype=torch.float64))
    (grad,) = torch.autograd.grad(loss, embedding)
    assert grad.abs().sum() > 0 and torch.count_nonzero(grad.movedim(1, -1)[~valid]) == 0


def test_sampled_pairs_with_ignored_pixels_estimate_the_exact_mean():
    """Two images with 20 and 5 valid pixels of 48: the exact loss, a pair loop over the valid pixels only (pooled
    over the batch, 425 pairs), is what the sampled estimate averages to; a fully ignored image adds nothing."""
    embedding, target = random_case(batch=2, grid=(6, 8), seed=5)
    target = target.clone()
    target.view(2, -1)[0, 20:], target.view(2, -1)[1, 5:] = 255, 255
    losses = []
    for f, y in zip(embedding.detach().flatten(2).transpose(1, 2), target.flatten(1), strict=True):
        for i in torch.nonzero(y != 255)[:, 0]:
            for j in torch.nonzero(y != 255)[:, 0]:
                p = 0.1 + float(f[i] @ f[j]) * (0.8 - 0.1)
                losses.append(-math.log(p if y[i] == y[j] else 1 - p))
    assert len(losses) == 20**2 + 5**2
    exact = affinity_bce(embedding, target, T_AFFINITY, ignore_index=255)
    torch.testing.assert_close(exact, torch.tensor(np.mean(losses)).double())
    torch.manual_seed(0)
    estimates = torch.stack(
        [affinity_bce(embedding, target, T_AFFINITY, ignore_index=255, num_pairs=64) for _ in range(400)]
    ).detach()
    assert abs(estimates.mean() - exact) < 4 * estimates.std() / math.sqrt(len(estimates))
    nothing = affinity_bce(embedding[:1], torch.full_like(target[:1], 255), T_AFFINITY, 255, num_pairs=64)
    assert nothing.item() == 0.0 and nothing.requires_grad  # a fully ignored batch: 0, not NaN


def test_transition_log_volume():
    torch.testing.assert_close(transition_log_volume(T_CLASS), torch.tensor(math.log(0.5)))
    # bounded below: a singular or reflected T gives log(floor) and no gradient, never -inf or NaN
    for singular in (torch.tensor([[0.5, 0.5], [0.5, 0.5]]), torch.tensor([[0.2, 0.8], [0.9, 0.1]])):
        t = singular.clone().requires_grad_()
        value = transition_log_volume(t, floor=1e-3)
        value.backward()
        assert value.item() == pytest.approx(math.log(1e-3)) and t.grad.abs().max() == 0


def test_volume_term_leaves_an_unused_affinity_transition_alone():
    """Without the affinity loss and the consistency term T_A is unused: its volume must not drive it to singular."""
    pred = {"logits": torch.randn(1, 3, 4, 4), "embedding": torch.rand(1, 2, 2, 2)}
    target = torch.randint(0, 3, (1, 4, 4))
    loss = CALCLoss(3, lambda_affinity=0.0, lambda_consistency=0.0, lambda_volume=1.0, correction=True)
    loss(pred, target)
    torch.testing.assert_close(loss.last_terms["volume"], transition_log_volume(loss.t_class()).detach())


def test_affinity_consistency_hand_value():
    # T_A*(T_CLASS, (.5, .5)) = [[.62, .38], [.37, .63]], see test_transition.py
    expected = ((0.62 - 0.9) ** 2 + (0.38 - 0.1) ** 2 + (0.37 - 0.2) ** 2 + (0.63 - 0.8) ** 2) / 4
    value = affinity_consistency(T_CLASS, T_AFFINITY, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(value, torch.tensor(expected))


def test_class_prior():
    labels = [np.array([[0, 0, 1], [2, 255, 0]]), torch.tensor([1, 1, 0, 255])]
    torch.testing.assert_close(class_prior(labels, 3, ignore_index=255), torch.tensor([4.0, 3.0, 1.0]) / 8)
    with pytest.raises(ValueError, match="0..2"):
        class_prior([np.array([0, 3])], 3)
    with pytest.raises(ValueError, match="no labelled pixel"):
        class_prior([np.array([255])], 3, ignore_index=255)


def make_pred(batch=2, classes=3, size=(8, 8), grid=(4, 4), channels=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    embedding = torch.relu(torch.randn(batch, channels, *grid, generator=gen))
    return {
        "logits": torch.randn(batch, classes, *size, generator=gen),
        "rectified": torch.randn(batch, classes, *size, generator=gen),
        "embedding": embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-9),
    }, torch.randint(0, classes, (batch, 1, *size), generator=gen)


def test_warmup_is_uncorrected_sum():
    pred, target = make_pred()
    loss = CALCLoss(3, class_prior=torch.tensor([0.5, 0.3, 0.2]), lambda_affinity=0.7)
    y = target[:, 0]
    grid_y = y[:, ::2, ::2]  # nearest downsampling by 2
    expected = (
        F.cross_entropy(pred["logits"], y)
        + F.cross_entropy(pred["rectified"], y)
        + 0.7 * affinity_bce(pred["embedding"], grid_y)
    )
    torch.testing.assert_close(loss(pred, target), expected)
    assert set(loss.last_terms) == {"class", "affinity", "total"}


def test_correction_combines_terms_with_weights():
    pred, target = make_pred(seed=1)
    prior = torch.tensor([0.5, 0.3, 0.2])
    loss = CALCLoss(3, prior, lambda_affinity=0.7, lambda_volume=0.5, lambda_consistency=0.01, correction=True)
    t_class, t_aff = loss.t_class(), loss.t_affinity()
    y = target[:, 0]
    expected = (
        forward_corrected_nll(pred["logits"], y, t_class)
        + forward_corrected_nll(pred["rectified"], y, t_class)
        + 0.7 * affinity_bce(pred["embedding"], y[:, ::2, ::2], t_aff)
        + 0.5 * (transition_log_volume(t_class) + transition_log_volume(t_aff))
        + 0.01 * affinity_consistency(t_class, t_aff, prior)
    )
    torch.testing.assert_close(loss(pred, target), expected)
    assert set(loss.last_terms) == {"class", "affinity", "volume", "consistency", "total"}


def test_dice_term_is_weighted_and_corrected():
    pred, target = make_pred(seed=4)
    prior = torch.tensor([0.5, 0.3, 0.2])
    loss = CALCLoss(3, prior, lambda_affinity=0.7, lambda_dice=0.4)
    y = target[:, 0]
    without = CALCLoss(3, prior, lambda_affinity=0.7)
    # warm-up: no Dice term, the NLL's posteriors stay calibrated for the estimate at the switch
    torch.testing.assert_close(loss(pred, target), without(pred, target))
    assert set(loss.last_terms) == {"class", "affinity", "total"}
    loss.correction = without.correction = True
    t_class = loss.t_class()
    corrected = sum(forward_corrected_dice(pred[key], y, t_class) for key in ("logits", "rectified"))
    torch.testing.assert_close(loss(pred, target), without(pred, target) + 0.4 * corrected)
    assert set(loss.last_terms) == {"class", "dice", "affinity", "volume", "consistency", "total"}
    plain = forward_corrected_dice(pred["logits"], y) + forward_corrected_dice(pred["rectified"], y)
    assert not torch.allclose(corrected, plain)


def test_dice_term_does_not_move_the_transition():
    pred, target = make_pred(seed=5)
    grads = []
    for weight in (0.0, 3.0):
        loss = CALCLoss(3, lambda_affinity=0.0, lambda_consistency=0.0, lambda_dice=weight, correction=True)
        loss(pred, target).backward()
        grads.append(loss.t_class.weight.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)  # T_C's gradient: the likelihood terms only
    logits = pred["logits"].clone().requires_grad_()
    loss = CALCLoss(3, lambda_affinity=0.0, lambda_consistency=0.0, lambda_dice=3.0, correction=True)
    loss({**pred, "logits": logits}, target).backward()
    without = CALCLoss(3, lambda_affinity=0.0, lambda_consistency=0.0, correction=True)
    reference = pred["logits"].clone().requires_grad_()
    without({**pred, "logits": reference}, target).backward()
    assert not torch.allclose(logits.grad, reference.grad)  # while the network's is the Dice term's too


def test_known_class_transition_starts_both_transitions():
    prior = torch.tensor([0.6, 0.3, 0.1])
    known = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.0, 0.25, 0.75]])
    loss = CALCLoss(3, prior, transition_init=known.tolist(), correction=True)
    torch.testing.assert_close(loss.t_class().detach(), known, atol=1e-4, rtol=0)
    # T_A starts at the affinity transition T_C implies under the prior (up to the clipped zeros of T_C)
    implied = affinity_transition_from_class(known, prior)
    torch.testing.assert_close(loss.t_affinity().detach(), implied, atol=5e-4, rtol=0)
    assert not torch.allclose(implied, NoiseTransition(2, -2.0)().detach(), atol=0.05)


def test_stage_is_saved_in_state_dict():
    loss = CALCLoss(3, lambda_consistency=0.0)
    loss.correction = True
    restored = CALCLoss(3, lambda_consistency=0.0)
    assert not restored.correction
    restored.load_state_dict(loss.state_dict())
    assert restored.correction


def test_transitions_get_gradients_only_in_correction():
    pred, target = make_pred(seed=2)
    pred = {key: value.requires_grad_() for key, value in pred.items()}
    loss = CALCLoss(3, torch.tensor([0.5, 0.3, 0.2]))
    loss(pred, target).backward()
    assert loss.t_class.weight.grad is None and loss.t_affinity.weight.grad is None
    loss.correction = True
    loss(pred, target).backward()
    assert loss.t_class.weight.grad.abs().sum() > 0 and loss.t_affinity.weight.grad.abs().sum() > 0


def test_no_rectified_and_no_affinity_is_cross_entropy():
    pred, target = make_pred(seed=3)
    del pred["rectified"]
    loss = CALCLoss(3, lambda_affinity=0.0, lambda_consistency=0.0)
    torch.testing.assert_close(loss(pred, target), F.cross_entropy(pred["logits"], target[:, 0]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"lambda_affinity": -1.0}, "lambda_affinity"),
        ({"lambda_volume": -0.1}, "lambda_volume"),
        ({"lambda_consistency": -0.1}, "lambda_consistency"),
        ({"lambda_consistency": 0.0, "lambda_dice": -1.0}, "lambda_dice"),
        ({"lambda_consistency": 0.01}, "class_prior"),
        ({"class_prior": torch.ones(4)}, "class_prior"),
        ({"lambda_consistency": 0.0, "affinity_pairs": "null"}, "affinity_pairs"),
        ({"lambda_consistency": 0.0, "affinity_chunk_size": 0}, "affinity_chunk_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CALCLoss(3, **kwargs)


def test_bad_inputs():
    pred, target = make_pred()
    loss = CALCLoss(3, lambda_consistency=0.0)
    with pytest.raises(TypeError, match="dict"):
        loss(pred["logits"], target)
    with pytest.raises(ValueError, match="one-channel"):
        loss(pred, target.repeat(1, 2, 1, 1))
    with pytest.raises(ValueError, match="does not match"):
        loss(pred, target[..., :4])


def identical_pair_embedding() -> torch.Tensor:
    """B=1, D=2, grid 1x2: both pixels (.6, .8), so a_12 = 1."""
    return torch.tensor([[[[0.6, 0.6]], [[0.8, 0.8]]]])


LOSS_CASES = {  # name: loss of (logits BCHW, embedding BDHW, target BHW)
    "nll corrected": lambda q, f, y: forward_corrected_nll(q, y, T_CLASS.repeat(2, 2) / 2),
    "nll plain": lambda q, f, y: forward_corrected_nll(q, y),
    "dice corrected": lambda q, f, y: forward_corrected_dice(q, y, T_CLASS.repeat(2, 2) / 2),
    "dice plain": lambda q, f, y: forward_corrected_dice(q, y),
    "affinity exact": lambda q, f, y: affinity_bce(f, y % 2, T_AFFINITY),
    "affinity chunked": lambda q, f, y: affinity_bce(f, y % 2, T_AFFINITY, chunk_size=7),
    "affinity uncorrected": lambda q, f, y: affinity_bce(f, y % 2),
}


@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_losses_are_float32_under_autocast(name, amp_dtype):
    gen = torch.Generator().manual_seed(7)
    logits = (3 * torch.randn(2, 4, 6, 5, generator=gen)).requires_grad_()
    embedding = torch.relu(torch.randn(2, 3, 6, 5, generator=gen))
    embedding = (embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-9)).requires_grad_()
    target = torch.randint(0, 4, (2, 6, 5), generator=gen)
    expected = LOSS_CASES[name](logits, embedding, target)
    with torch.autocast("cpu", dtype=amp_dtype):
        value = LOSS_CASES[name](logits, embedding, target)
        low = LOSS_CASES[name](logits.to(amp_dtype), embedding.to(amp_dtype), target)  # as a conv would give them
    assert value.dtype == torch.float32 and low.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6)
    rounded = LOSS_CASES[name](logits.to(amp_dtype).float(), embedding.to(amp_dtype).float(), target)
    torch.testing.assert_close(low, rounded, rtol=1e-6, atol=1e-6)
    grads = torch.autograd.grad(value + low, (logits, embedding), allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_clamp_is_effective_under_autocast(amp_dtype):
    # a confident wrong prediction and a wrong "same" pair both have probability ~0 and cost -log(1e-10) = 23.03;
    # computed in float16 the clamp at 1e-10 rounds to 0 and the loss is inf
    clamp_cost = -math.log(1e-10)
    logits = torch.tensor([0.0, 40.0]).view(1, 2, 1, 1)
    with torch.autocast("cpu", dtype=amp_dtype):
        nll = forward_corrected_nll(logits, torch.zeros(1, 1, 1, dtype=torch.long), torch.eye(2))
        bce = affinity_bce(identical_pair_embedding(), torch.tensor([[[0, 1]]]), torch.eye(2))
    torch.testing.assert_close(nll, torch.tensor(clamp_cost))
    torch.testing.assert_close(bce, torch.tensor(2 * clamp_cost / 4))  # 2 of the 4 pairs are wrong "same" pairs


def test_warmup_dice_adds_the_plain_dice_term_in_the_warm_up():
    """``warmup_dice``: the warm-up loss is the NLL plus ``lambda_dice`` times MONAI's soft Dice of softmax(logits)
    (T_C = I), as ``DiceCELoss`` trains; without it the warm-up has no Dice term."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    pred = {"logits": logits}
    nll = F.cross_entropy(logits, target)
    dice = DiceLoss(include_background=True, to_onehot_y=True, softmax=True)(logits, target.unsqueeze(1))
    common = {"lambda_affinity": 0.0, "lambda_consistency": 0.0, "lambda_dice": 0.5}
    plain = CALCLoss(3, **common)
    with_dice = CALCLoss(3, warmup_dice=True, **common)
    torch.testing.assert_close(plain(pred, target), nll)
    torch.testing.assert_close(with_dice(pred, target), nll + 0.5 * dice)
    assert set(with_dice.last_terms) == {"class", "dice", "total"}


def test_bounded_nll_forward_corrected_equals_its_definition():
    """``bounded_nll(..., t_class=T)`` is ``mean (1 - ((softmax x) T)_y^q) / q`` over labelled pixels."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0, 0] = 255
    t = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.0, 0.3, 0.7]])
    noisy = torch.einsum("bchw,cd->bdhw", torch.softmax(logits, 1), t)
    valid = target != 255
    p_y = noisy.gather(1, torch.where(valid, target, 0)[:, None])[:, 0]
    expected = ((1 - p_y**0.7) / 0.7)[valid].mean()
    torch.testing.assert_close(bounded_nll(logits, target, 0.7, 255, t), expected)
    torch.testing.assert_close(
        bounded_nll(logits, target, 0.7, 255, torch.eye(3)), bounded_nll(logits, target, 0.7, 255)
    )


def test_bounded_correction_trains_the_network_by_gce_and_t_class_by_the_likelihood():
    """``correction_gce_q``: in the correction stage the class term is the forward-corrected GCE plus the
    forward-corrected NLL, whose gradients reach the network only through the GCE and ``T_C`` only through the NLL."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    common = {"lambda_affinity": 0.0, "lambda_consistency": 0.0, "lambda_volume": 0.0, "correction": True}
    loss = CALCLoss(3, correction_gce_q=0.5, **common)
    total = loss({"logits": logits}, target)
    t = loss.t_class()
    torch.testing.assert_close(
        total, bounded_nll(logits, target, 0.5, t_class=t) + forward_corrected_nll(logits, target, t)
    )
    total.backward()
    grad_net, grad_t = logits.grad.clone(), loss.t_class.weight.grad.clone()

    x = logits.detach().clone().requires_grad_(True)
    bounded_nll(x, target, 0.5, t_class=t.detach()).backward()
    torch.testing.assert_close(grad_net, x.grad)
    reference = CALCLoss(3, **common)  # the paper's correction loss: NLL for both
    reference.t_class.weight.data.copy_(loss.t_class.weight.data)
    forward_corrected_nll(logits.detach(), target, reference.t_class()).backward()
    torch.testing.assert_close(grad_t, reference.t_class.weight.grad)
    with pytest.raises(ValueError, match="correction_gce_q"):
        CALCLoss(3, correction_gce_q=1.5)
