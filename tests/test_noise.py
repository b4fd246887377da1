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
"""Tests of scripts/noise.py: the noise modes, their parameters, expected transitions, determinism, 2D/3D, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose
from monai.utils import set_determinism
from scipy import ndimage
from scripts.noise import (
    NOISE_MODES,
    SimulateLabelNoise,
    SimulateLabelNoised,
    ellipse_noise,
    morph_noise,
    noise_transition_matrix,
    transition_noise,
)
from scripts.noise_rates import confusion_matrix, empirical_transition

RANDOM_MODES = ("morph", "symmetric", "asymmetric", "transition")
# a full-rank transition with every kind of row: mostly right, a zero entry, a wrong majority, an off-diagonal-heavy row
TRANSITION = [[0.8, 0.1, 0.05, 0.05], [0.1, 0.7, 0.2, 0.0], [0.0, 0.6, 0.4, 0.0], [0.1, 0.0, 0.1, 0.8]]


def extra(mode: str) -> dict[str, Any]:
    """The arguments a mode needs beyond the defaults: the transition matrix of mode "transition"; for omission a rate
    that erases most of the few parts of a test scene, so that every mode changes it."""
    return {"transition": TRANSITION} if mode == "transition" else {"rate": 0.9} if mode == "omission" else {}


def uniform_classes(shape: tuple[int, ...], num_classes: int = 4, seed: int = 0) -> np.ndarray:
    """1H[WD] label with each pixel's class uniform on 0..C-1."""
    return np.random.default_rng(seed).integers(0, num_classes, (1, *shape))


def solid_ellipse(
    shape: tuple[int, ...], centre: tuple[float, ...], axes: tuple[float, ...], angle: float = 0.0
) -> np.ndarray:
    """Boolean solid ellipse (2D, rotated by ``angle``) or axis-aligned ellipsoid (3D)."""
    grid = np.indices(shape, dtype=float) - np.reshape(centre, (-1,) + (1,) * len(shape))
    if len(shape) == 2:
        c, s = np.cos(angle), np.sin(angle)
        grid = np.stack([c * grid[0] + s * grid[1], -s * grid[0] + c * grid[1]])
    return sum((g / a) ** 2 for g, a in zip(grid, axes, strict=True)) <= 1.0


def scene(spatial_dims: int = 2) -> np.ndarray:
    """A 4-class 1H[WD] label: a large ellipse (1), a rectangle (2), a small blob (3) on top of the ellipse."""
    if spatial_dims == 2:
        label = np.zeros((64, 80), dtype=np.uint8)
        label[solid_ellipse(label.shape, (30, 40), (20, 30), 0.4)] = 1
        label[48:60, 5:30] = 2
        label[solid_ellipse(label.shape, (30, 50), (4, 5))] = 3
    else:
        label = np.zeros((24, 28, 20), dtype=np.uint8)
        label[solid_ellipse(label.shape, (12, 13, 10), (8, 10, 6))] = 1
        label[2:7, 2:10, 2:8] = 2
        label[solid_ellipse(label.shape, (12, 17, 10), (3, 3, 3))] = 3
    return label[None]


def boundary_distance(mask: np.ndarray) -> np.ndarray:
    """Distance of each pixel to the other side of ``mask``'s boundary (inside: to outside, outside: to inside)."""
    return np.where(mask, ndimage.distance_transform_edt(mask), ndimage.distance_transform_edt(~mask))


def ball(radius: int, spatial_dims: int) -> np.ndarray:
    grid = np.indices((2 * radius + 1,) * spatial_dims) - radius
    return (grid**2).sum(axis=0) <= radius**2


@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_flip_rate_matches_parameter(mode: str, rate: float) -> None:
    label = np.random.default_rng(0).integers(0, 4, (1, 128, 128))
    noisy = SimulateLabelNoise(mode, 4, rate=rate).set_random_state(1)(label)
    sigma = np.sqrt(rate * (1 - rate) / label.size)  # binomial std of the measured share
    assert abs((noisy != label).mean() - rate) < 4 * sigma


def test_symmetric_targets_uniform_over_other_classes() -> None:
    c = 5
    label = np.random.default_rng(0).integers(0, c, (1, 160, 160))
    noisy = SimulateLabelNoise("symmetric", c, rate=0.6).set_random_state(2)(label)
    flipped = noisy != label
    offsets = (noisy[flipped] - label[flipped]) % c
    share = np.bincount(offsets, minlength=c)[1:] / offsets.size
    sigma = np.sqrt((1 / (c - 1)) * (1 - 1 / (c - 1)) / offsets.size)
    np.testing.assert_array_less(np.abs(share - 1 / (c - 1)), 4 * sigma)


@pytest.mark.parametrize("class_map", [None, [2, 0, 3, 1], [0, 2, 1, 3]])
def test_asymmetric_flips_to_class_map(class_map: list[int] | None) -> None:
    label = np.random.default_rng(0).integers(0, 4, (1, 50, 60))
    noisy = SimulateLabelNoise("asymmetric", 4, rate=0.5, class_map=class_map).set_random_state(3)(label)
    target = np.asarray(class_map if class_map is not None else [1, 2, 3, 0])
    changed = noisy != label
    np.testing.assert_array_equal(noisy[changed], target[label[changed]])
    if class_map == [0, 2, 1, 3]:  # classes mapped to themselves never change
        assert not changed[(label == 0) | (label == 3)].any()


@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
def test_per_class_rates_match_empirical_flip_rates(mode: str) -> None:
    rates = [0.1, 0.3, 0.6, 0.0]
    label = uniform_classes((256, 256))
    noisy = SimulateLabelNoise(mode, 4, rate=rates).set_random_state(4)(label)
    flipped = [(noisy[label == c] != c).mean() for c in range(4)]
    np.testing.assert_allclose(flipped, rates, atol=0.01)
    assert (noisy[label == 3] == 3).all()  # rate 0: never changes
    expected = noise_transition_matrix(mode, 4, rates)
    np.testing.assert_allclose(empirical_transition(confusion_matrix(noisy, label, 4)), expected, atol=0.01)


@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
def test_one_rate_equals_the_same_rate_per_class(mode: str) -> None:
    label = uniform_classes((40, 50))
    one = SimulateLabelNoise(mode, 4, rate=0.3).set_random_state(2)(label)
    each = SimulateLabelNoise(mode, 4, rate=[0.3] * 4).set_random_state(2)(label)
    np.testing.assert_array_equal(one, each)


def test_systematic_confusion_wrist_labelled_shaft() -> None:
    """Wrist (2) labelled shaft (1) in 60 % of its pixels, other classes clean (``docs/method.md``, identifiability)."""
    label = uniform_classes((256, 256))
    asymmetric = SimulateLabelNoise("asymmetric", 4, rate=[0, 0, 0.6, 0], class_map=[0, 1, 1, 3])
    noisy = asymmetric.set_random_state(0)(label)
    changed = noisy != label
    assert (label[changed] == 2).all() and (noisy[changed] == 1).all()
    assert abs(changed[label == 2].mean() - 0.6) < 0.01
    matrix = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0.6, 0.4, 0], [0, 0, 0, 1]]
    np.testing.assert_allclose(noise_transition_matrix("asymmetric", 4, [0, 0, 0.6, 0], [0, 1, 1, 3]), matrix)
    via_matrix = SimulateLabelNoise("transition", 4, transition=matrix).set_random_state(0)(label)
    np.testing.assert_allclose(empirical_transition(confusion_matrix(via_matrix, label, 4)), matrix, atol=0.01)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_transition_mode_empirical_confusion_matches_matrix(spatial_dims: int) -> None:
    label = uniform_classes((256, 256) if spatial_dims == 2 else (40, 40, 40))
    noisy = SimulateLabelNoise("transition", 4, transition=TRANSITION).set_random_state(5)(label)
    confusion = confusion_matrix(noisy, label, 4)
    np.testing.assert_allclose(empirical_transition(confusion), TRANSITION, atol=0.01)
    assert confusion[np.asarray(TRANSITION) == 0].sum() == 0  # zero-probability transitions never happen
    np.testing.assert_allclose(noise_transition_matrix("transition", 4, transition=TRANSITION), TRANSITION)


def test_transition_noise_inverse_cdf_golden_values() -> None:
    matrix = np.array([[0.5, 0.0, 0.5], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5]])
    uniform = np.array([0.0, 0.49, 0.5, 0.999, 0.0, 0.7, 0.19, 0.2, 0.49, 0.5])
    label = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(transition_noise(label, uniform, matrix), [0, 0, 2, 2, 2, 2, 0, 1, 1, 2])
    np.testing.assert_array_equal(transition_noise(label, uniform, np.eye(3)), label)
    permutation = np.eye(3)[[1, 2, 0]]  # 0 -> 1, 1 -> 2, 2 -> 0 whatever the draw
    np.testing.assert_array_equal(transition_noise(label, uniform, permutation), (label + 1) % 3)
    rounded = np.array([[0.7, 0.2, 0.1, 0.0]] * 4)  # the cumulative sum rounds to the largest draw below 1
    largest = np.nextafter(1.0, 0.0)
    assert np.cumsum(rounded[0])[2] == largest
    np.testing.assert_array_equal(transition_noise(np.zeros(1, int), np.array([largest]), rounded), [2])  # not 3


def test_transition_mode_determinism_and_dictionary_form() -> None:
    label = uniform_classes((30, 40))
    first = SimulateLabelNoise("transition", 4, transition=TRANSITION).set_random_state(3)(label)
    again = SimulateLabelNoise("transition", 4, transition=TRANSITION).set_random_state(3)(label)
    other = SimulateLabelNoise("transition", 4, transition=TRANSITION).set_random_state(4)(label)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    out = SimulateLabelNoised(["a", "b"], "transition", 4, transition=TRANSITION).set_random_state(3)
    data = out({"a": label, "b": label})
    np.testing.assert_array_equal(data["a"], first)
    np.testing.assert_array_equal(data["b"], first)


S = 1 / 6  # symmetric 50 % on 4 classes: 0.5 spread over the 3 other classes
PAIR_FLIP_40 = [[0.6, 0.4, 0, 0], [0.4, 0.6, 0, 0], [0, 0, 0.6, 0.4], [0, 0, 0.4, 0.6]]
CYCLIC_50 = [[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0.5, 0.5], [0.5, 0, 0, 0.5]]
CYCLIC_50_HALF = [[0.75, 0.25, 0, 0], [0, 0.75, 0.25, 0], [0, 0, 0.75, 0.25], [0.25, 0, 0, 0.75]]


@pytest.mark.parametrize(
    "mode, rate, class_map, fraction, expected",
    [
        ("symmetric", 0.5, None, 1.0, [[0.5, S, S, S], [S, 0.5, S, S], [S, S, 0.5, S], [S, S, S, 0.5]]),
        (
            "symmetric",
            [0, 0.3, 0, 0.9],
            None,
            1.0,
            [[1, 0, 0, 0], [0.1, 0.7, 0.1, 0.1], [0, 0, 1, 0], [0.3] * 3 + [0.1]],
        ),
        ("asymmetric", 0.5, None, 1.0, CYCLIC_50),
        ("asymmetric", 0.4, [1, 0, 3, 2], 1.0, PAIR_FLIP_40),
        ("asymmetric", [0, 0.5, 0, 0], [0, 1, 1, 3], 1.0, np.eye(4)),  # a class mapped to itself: no-op
        ("asymmetric", 0.5, None, 0.5, CYCLIC_50_HALF),  # half the images corrupted: (I + T) / 2
    ],
)
def test_noise_transition_matrix_golden_values(
    mode: str, rate: Any, class_map: list[int] | None, fraction: float, expected: Any
) -> None:
    matrix = noise_transition_matrix(mode, 4, rate, class_map, fraction=fraction)
    assert matrix.shape == (4, 4) and matrix.dtype == np.float64
    np.testing.assert_allclose(matrix, expected, atol=1e-12)


def test_noise_transition_matrix_identifiability_of_the_standard_settings() -> None:
    """``docs/method.md``, identifiability: cyclic 50 % on 4 classes is singular, pair-flip 40 % has eigenvalue 0.2."""
    cyclic = noise_transition_matrix("asymmetric", 4, 0.5)
    assert abs(np.linalg.det(cyclic)) < 1e-12
    pair_flip = noise_transition_matrix("asymmetric", 4, 0.4, [1, 0, 3, 2])
    assert min(abs(np.linalg.eigvals(pair_flip))) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("ellipse", 4, 0.5), {}, "with a class transition"),
        (("morph", 4, 0.5), {}, "with a class transition"),
        (("transition", 4), {}, "needs a transition matrix"),
        (("transition", 4), {"transition": np.eye(3)}, r"4 x 4 transition"),
        (("symmetric", 4, [0.5, 0.5]), {}, "4 per-class rates"),
        (("asymmetric", 4, 0.5, [0, 1, 2]), {}, "class_map"),
        (("symmetric", 4, 0.5), {"fraction": 2.0}, "fraction"),
        (("symmetric", 1, 0.5), {}, "num_classes"),
    ],
)
def test_noise_transition_matrix_ill_arguments(args: tuple, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        noise_transition_matrix(*args, **kwargs)


@pytest.mark.parametrize(
    "shape, centre, axes, angle",
    [
        ((100, 100), (50.0, 47.3), (20, 30), 0.0),
        ((100, 100), (50.0, 47.3), (8, 25), 0.5),
        ((100, 100), (40.2, 55.0), (30, 10), 2.0),
        ((60, 60), (30.0, 30.0), (5, 12), 1.0),
        ((40, 40, 40), (20.0, 19.5, 20.3), (10, 15, 8), 0.0),
        ((40, 40, 40), (20.0, 19.5, 20.3), (6, 9, 5), 0.0),
    ],
)
def test_ellipse_of_an_ellipse_is_itself(
    shape: tuple[int, ...], centre: tuple[float, ...], axes: tuple[float, ...], angle: float
) -> None:
    label = solid_ellipse(shape, centre, axes, angle).astype(np.uint8)
    noisy = SimulateLabelNoise("ellipse", 2)(label[None])[0]
    changed = noisy != label
    assert changed.sum() <= 0.02 * label.sum()
    assert boundary_distance(label.astype(bool))[changed].max(initial=0) <= 1.0


@pytest.mark.parametrize("height, width", [(20, 30), (10, 40), (25, 25), (6, 8)])
def test_ellipse_of_a_rectangle_changes_only_near_its_boundary(height: int, width: int) -> None:
    label = np.zeros((1, 60, 70), dtype=np.int64)
    label[0, 10 : 10 + height, 12 : 12 + width] = 1
    noisy = SimulateLabelNoise("ellipse", 2)(label)[0]
    changed = noisy != label[0]
    assert 0 < changed.sum() < 0.25 * height * width
    # the moment ellipse cuts the corners and bulges past the side midpoints by 2/sqrt(3) - 1 = 15 % of a half side
    assert boundary_distance(label[0] == 1)[changed].max() <= 0.1 * max(height, width) + 1


def test_ellipse_paints_small_parts_on_top() -> None:
    label = scene(2)
    noisy = ellipse_noise(label[0].astype(np.int64), 4)
    small = label[0] == 3
    assert (noisy[small] == 3).mean() > 0.9  # the blob inside the large ellipse survives
    assert set(np.unique(noisy)) == {0, 1, 2, 3}


def test_ellipse_treats_each_component_separately() -> None:
    label = np.zeros((40, 60), dtype=np.int64)
    left, right = solid_ellipse(label.shape, (20, 15), (8, 10)), solid_ellipse(label.shape, (20, 45), (10, 6), 0.3)
    label[left | right] = 1
    noisy = ellipse_noise(label, 2)
    assert (noisy != label).sum() <= 0.03 * label.sum()  # one ellipse over both would fill the gap between them


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("radius", [1, 2, 4])
def test_morph_equals_scipy_ball_morphology(spatial_dims: int, radius: int) -> None:
    label = scene(spatial_dims)[0].astype(np.int64)
    mask = label == 1
    eroded = morph_noise(label, [(1, "erode", radius)]) == 1
    dilated = morph_noise(label, [(1, "dilate", radius)]) == 1
    structure = ball(radius, spatial_dims)
    np.testing.assert_array_equal(eroded, ndimage.binary_erosion(mask, structure, border_value=1))
    np.testing.assert_array_equal(dilated, ndimage.binary_dilation(mask, structure))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_morph_erosion_shrinks_dilation_grows_within_radius(spatial_dims: int, seed: int) -> None:
    label = scene(spatial_dims)
    transform = SimulateLabelNoise("morph", 4, radius=(1, 3)).set_random_state(seed)
    noisy = transform(label)[0]
    clean = label[0]
    changed = noisy != clean
    assert changed.any()
    near_some_boundary = np.zeros_like(changed)
    for c, op, radius in transform._operations:
        assert 1 <= radius <= 3
        before, after = clean == c, noisy == c
        if op == "erode":
            assert not (after & ~before).any()  # only shrinks
            assert (noisy[before & ~after] != c).all()
        else:
            assert not (before & ~after).any()  # only grows
        near_some_boundary |= boundary_distance(before) <= radius
    assert near_some_boundary[changed].all()
    freed = changed & (clean != 0) & (noisy == 0)
    assert all(op == "erode" for c, op, _ in transform._operations if (freed & (clean == c)).any())


def test_morph_draws_both_operations_and_every_radius() -> None:
    transform = SimulateLabelNoise("morph", 4, radius=(2, 4))
    transform.set_random_state(0)
    drawn = []
    for _ in range(40):
        transform.randomize(scene(2))
        drawn += transform._operations
    assert {op for _, op, _ in drawn} == {"erode", "dilate"}
    assert {r for _, _, r in drawn} == {2, 3, 4}


def test_morph_dilations_meet_without_eating_each_other() -> None:
    label = np.zeros((20, 30), dtype=np.int64)
    label[5:15, 2:10], label[5:15, 20:28], label[5:15, 12:18] = 1, 2, 3
    noisy = morph_noise(label, [(1, "dilate", 6), (2, "dilate", 6), (3, "erode", 1)])
    assert ((label == 1) <= (noisy == 1)).all() and ((label == 2) <= (noisy == 2)).all()
    row = noisy[10]
    np.testing.assert_array_equal(row[10:15], [1, 1, 1, 1, 1])  # gap columns 10..19: nearest dilated class wins
    np.testing.assert_array_equal(row[15:20], [2, 2, 2, 2, 2])
    assert not (noisy == 3).any()  # class 3 is overwritten by its neighbours' dilations


@pytest.mark.parametrize("mode", RANDOM_MODES)
def test_same_seed_same_output_different_seed_different(mode: str) -> None:
    label = scene(2)
    first = SimulateLabelNoise(mode, 4, **extra(mode)).set_random_state(7)(label)
    again = SimulateLabelNoise(mode, 4, **extra(mode)).set_random_state(7)(label)
    np.testing.assert_array_equal(first, again)
    others = [SimulateLabelNoise(mode, 4, **extra(mode)).set_random_state(s)(label) for s in (8, 9, 10)]
    assert any(not np.array_equal(first, other) for other in others)


@pytest.mark.parametrize("mode", NOISE_MODES)
def test_set_determinism_through_compose(mode: str) -> None:
    label = scene(2)
    outputs = []
    for _ in range(2):
        set_determinism(seed=11)
        outputs.append(Compose([SimulateLabelNoised("label", mode, 4, **extra(mode))])({"label": label})["label"])
    set_determinism(None)
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("mode", NOISE_MODES)
def test_every_mode_works_in_3d(mode: str) -> None:
    label = scene(3)
    noisy = SimulateLabelNoise(mode, 4, radius=(1, 2), **extra(mode)).set_random_state(0)(label)
    assert noisy.shape == label.shape and noisy.dtype == label.dtype
    changed = (noisy != label).mean()
    assert 0 < changed < (0.6 if mode in ("symmetric", "asymmetric", "transition") else 0.3)
    assert set(np.unique(noisy)) <= {0, 1, 2, 3}


@pytest.mark.parametrize("mode", NOISE_MODES)
def test_fraction_zero_changes_nothing(mode: str) -> None:
    transform = SimulateLabelNoise(mode, 4, fraction=0.0, **extra(mode)).set_random_state(0)
    label = scene(2)
    assert all(np.array_equal(transform(label), label) for _ in range(10))


def test_fraction_half_corrupts_about_half() -> None:
    transform = SimulateLabelNoise("symmetric", 4, rate=0.3, fraction=0.5).set_random_state(0)
    label = np.zeros((1, 8, 8), dtype=np.int64)
    calls = 400
    corrupted = sum(bool((transform(label) != label).any()) for _ in range(calls))
    assert abs(corrupted - calls / 2) < 4 * np.sqrt(calls / 4)


@pytest.mark.parametrize("mode", NOISE_MODES)
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_ignore_index_untouched(mode: str, spatial_dims: int) -> None:
    label = scene(spatial_dims).astype(np.int64)
    ignored = np.zeros(label.shape, dtype=bool)
    ignored[..., :3] = True
    ignored[(0, slice(10, 16)) + (slice(None),) * (spatial_dims - 1)] = True  # crosses the ellipse
    label[ignored] = 255
    noisy = SimulateLabelNoise(mode, 4, radius=(2, 3), ignore_index=255, **extra(mode)).set_random_state(0)(label)
    np.testing.assert_array_equal(noisy[ignored], 255)
    assert not (noisy[~ignored] == 255).any()


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.astype(np.uint8),
        lambda a: a.astype(np.float32),
        lambda a: torch.as_tensor(a, dtype=torch.int64),
        lambda a: torch.as_tensor(a, dtype=torch.float32),
        lambda a: MetaTensor(torch.as_tensor(a), affine=torch.diag(torch.tensor([2.0, 3.0, 1.0, 1.0]))),
    ],
)
@pytest.mark.parametrize("mode", NOISE_MODES)
def test_type_dtype_shape_and_meta_kept(make: Any, mode: str) -> None:
    label = make(scene(2))
    noisy = SimulateLabelNoise(mode, 4, **extra(mode)).set_random_state(0)(label)
    assert type(noisy) is type(label) and noisy.dtype == label.dtype and noisy.shape == label.shape
    if isinstance(label, MetaTensor):
        torch.testing.assert_close(noisy.affine, label.affine)
    assert (np.asarray(noisy) != np.asarray(label)).any()


def test_dictionary_form_shares_one_draw_and_forwards_seed() -> None:
    label = scene(2)
    array = SimulateLabelNoise("symmetric", 4).set_random_state(5)(label)
    out = SimulateLabelNoised(["a", "b"], "symmetric", 4).set_random_state(5)({"a": label, "b": label, "c": label})
    np.testing.assert_array_equal(out["a"], array)
    np.testing.assert_array_equal(out["b"], array)
    assert out["c"] is label
    with pytest.raises(KeyError):
        SimulateLabelNoised("missing", "ellipse", 4)({"label": label})
    assert SimulateLabelNoised("missing", "ellipse", 4, allow_missing_keys=True)({"label": label})["label"] is label


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "gaussian", "num_classes": 4}, "mode"),
        ({"mode": "symmetric", "num_classes": 1}, "num_classes"),
        ({"mode": "symmetric", "num_classes": 4, "rate": 1.5}, r"rate in \[0, 1\]"),
        ({"mode": "symmetric", "num_classes": 4, "rate": [0.1, 0.2, 0.3]}, "4 per-class rates"),
        ({"mode": "asymmetric", "num_classes": 4, "rate": [0.1, 0.2, 0.3, 0.4, 0.5]}, "4 per-class rates"),
        ({"mode": "asymmetric", "num_classes": 4, "rate": [0.0, 0.0, 1.2, 0.0]}, r"rate in \[0, 1\]"),
        ({"mode": "symmetric", "num_classes": 4, "rate": [0.0, -0.1, 0.0, 0.0]}, r"rate in \[0, 1\]"),
        ({"mode": "symmetric", "num_classes": 4, "rate": [[0.1, 0.2], [0.3, 0.4]]}, "per-class rates"),
        ({"mode": "symmetric", "num_classes": 4, "fraction": -0.1}, "fraction"),
        ({"mode": "morph", "num_classes": 4, "radius": (3, 2)}, "radius"),
        ({"mode": "morph", "num_classes": 4, "radius": (-1, 2)}, "radius"),
        ({"mode": "asymmetric", "num_classes": 4, "class_map": [1, 2, 3]}, "class_map"),
        ({"mode": "asymmetric", "num_classes": 4, "class_map": [1, 2, 3, 4]}, "class_map"),
        ({"mode": "ellipse", "num_classes": 4, "ignore_index": 2}, "ignore_index"),
        ({"mode": "transition", "num_classes": 4}, "needs a C x C transition"),
        ({"mode": "symmetric", "num_classes": 4, "transition": TRANSITION}, "only used by mode 'transition'"),
        ({"mode": "transition", "num_classes": 3, "transition": TRANSITION}, r"3 x 3 transition.*\(4, 4\)"),
        ({"mode": "transition", "num_classes": 2, "transition": [0.5, 0.5]}, r"2 x 2 transition.*\(2,\)"),
        ({"mode": "transition", "num_classes": 2, "transition": [[1.2, -0.2], [0, 1]]}, "non-negative"),
        ({"mode": "transition", "num_classes": 2, "transition": [[0.9, 0.2], [0, 1]]}, r"summing to 1.*1\.1"),
        ({"mode": "transition", "num_classes": 2, "transition": [[0.5, 0.5], [0, 0]]}, "summing to 1"),
        ({"mode": "transition", "num_classes": 2, "transition": [[np.nan, 1], [0, 1]]}, "non-negative"),
        ({"mode": "transition", "num_classes": 2, "transition": [[1, 0], [0]]}, "2 x 2"),
    ],
)
def test_ill_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SimulateLabelNoise(**kwargs)


@pytest.mark.parametrize(
    "label, match",
    [
        (np.zeros((2, 8, 8)), "1H"),
        (np.zeros((8, 8)), "1H"),
        (np.full((1, 8, 8), 4), "0..3"),
        (np.full((1, 8, 8), -1), "0..3"),
        (np.full((1, 8, 8), 1.5), "0..3"),
    ],
)
@pytest.mark.parametrize("mode", NOISE_MODES)
def test_ill_labels(label: np.ndarray, match: str, mode: str) -> None:
    with pytest.raises(ValueError, match=match):
        SimulateLabelNoise(mode, 4, **extra(mode))(label)
