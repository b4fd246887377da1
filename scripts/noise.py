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
"""Simulated label noise (ellipse, morphological, omission, symmetric, asymmetric, transition) as MONAI transforms.

The modes follow the noise settings of Guo & Yuan, "Joint Class-Affinity Loss Correction for Robust Medical Image
Segmentation with Noisy Labels", MICCAI 2022, plus the morphological noise common in this literature, structures left
out by the annotator (omission) and an explicit class transition matrix (any class-conditional noise, e.g. a class
labelled as its neighbour most of the time). Labels predicted by a weak model are made by
:mod:`scripts.model_labels`, since they need a network trained first. The
maths sits in the pure functions on spatial label maps (``H[WD]``, no channel); the transforms draw the random
numbers. :func:`noise_transition_matrix` gives the expected transition of the class-conditional modes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Randomizable, RandomizableTransform
from monai.utils import TransformBackends, convert_data_type, convert_to_dst_type
from scipy import ndimage

__all__ = [
    "CLASS_CONDITIONAL_MODES",
    "EXPECTED_TRANSITION_MODES",
    "NOISE_MODES",
    "SimulateLabelNoise",
    "SimulateLabelNoised",
    "asymmetric_noise",
    "check_class_rates",
    "check_label_values",
    "check_transition",
    "default_rate",
    "ellipse_noise",
    "morph_noise",
    "noise_transition_matrix",
    "omission_noise",
    "symmetric_noise",
    "transition_noise",
]

NOISE_MODES = ("ellipse", "morph", "omission", "symmetric", "asymmetric", "transition")
CLASS_CONDITIONAL_MODES = ("symmetric", "asymmetric", "transition")  # the noisy class depends on the clean one only
# modes with an expected class transition: the class-conditional ones, and omission (a whole part erased with
# probability p: in expectation a share p of each class's pixels becomes background)
EXPECTED_TRANSITION_MODES = (*CLASS_CONDITIONAL_MODES, "omission")
DEFAULT_RATES = {"omission": 0.3}  # rate when none is given; 0.5 for the flip modes


def check_label_values(label: np.ndarray, num_classes: int, ignore_index: int | None = None) -> None:
    """Raise ``ValueError`` unless every value of ``label`` is an integer in 0..num_classes-1 or ``ignore_index``."""
    values = np.unique(label)
    bad = values[(values != np.round(values)) | (values < 0) | (values >= num_classes)]
    if ignore_index is not None:
        bad = bad[bad != ignore_index]
    if bad.size:
        allowed = f"0..{num_classes - 1}" + ("" if ignore_index is None else f" or ignore_index {ignore_index}")
        raise ValueError(f"expected label values in {allowed}, got {bad[:8].tolist()}")


def check_class_rates(rate: float | Sequence[float], num_classes: int) -> np.ndarray:
    """(C,) float64 flip probabilities from one ``rate`` for every class or a sequence of C per-class rates.

    Raises:
        ValueError: not one number or C numbers, or a rate outside [0, 1].
    """
    rates = np.asarray(rate, dtype=np.float64)
    if rates.ndim == 0:
        rates = np.full(num_classes, float(rates))
    if rates.shape != (num_classes,):
        raise ValueError(f"expected rate as one number or {num_classes} per-class rates, got {rate}")
    if not ((rates >= 0.0) & (rates <= 1.0)).all():
        raise ValueError(f"expected every rate in [0, 1], got {rate}")
    return rates


def check_transition(transition: Sequence[Sequence[float]] | np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) float64 row-stochastic matrix ``transition[i, j] = p(noisy = j | clean = i)``, rows rescaled to sum 1.

    Raises:
        ValueError: not C x C, a negative or non-finite entry, or a row whose sum is not 1 (within 1e-6).
    """
    try:
        matrix = np.asarray(transition, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"expected transition as a {num_classes} x {num_classes} matrix, got {transition}") from err
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(f"expected a {num_classes} x {num_classes} transition matrix, got shape {matrix.shape}")
    if not (np.isfinite(matrix) & (matrix >= 0.0)).all():
        raise ValueError(f"expected non-negative transition probabilities, got {matrix.tolist()}")
    sums = matrix.sum(axis=1)
    if not np.allclose(sums, 1.0, rtol=0.0, atol=1e-6):
        raise ValueError(f"expected transition rows (clean classes) summing to 1, got row sums {sums.tolist()}")
    return matrix / sums[:, None]


def noise_transition_matrix(
    mode: str,
    num_classes: int,
    rate: float | Sequence[float] | None = None,
    class_map: Sequence[int] | None = None,
    transition: Sequence[Sequence[float]] | np.ndarray | None = None,
    fraction: float = 1.0,
) -> np.ndarray:
    """Expected class transition ``T[i, j] = p(noisy = j | clean = i)`` of a class-conditional noise setting.

    With r_i the flip rate of class i: symmetric ``T[i, i] = 1 - r_i``, ``T[i, j] = r_i / (C - 1)``; asymmetric
    ``T[i, i] = 1 - r_i``, ``T[i, class_map[i]] += r_i`` (default class_map c -> (c + 1) mod C); omission
    ``T[i, i] = 1 - r_i``, ``T[i, 0] = r_i`` for the foreground classes (expected over the random choice of the
    erased parts: each part, hence each pixel, is erased with probability r_i); transition: the given matrix. With
    ``fraction`` alpha of the images corrupted, ``(1 - alpha) I + alpha T``.

    Args:
        mode: one of ``EXPECTED_TRANSITION_MODES``: "symmetric", "asymmetric", "transition" or "omission" (see
            :class:`SimulateLabelNoise`).
        num_classes: C.
        rate: one rate or C per-class rates (symmetric, asymmetric, omission); None: the mode's default (0.3 for
            omission, 0.5 otherwise).
        class_map: asymmetric target of each class, length C.
        transition: C x C row-stochastic matrix (transition mode).
        fraction: share of corrupted images.

    Returns:
        (C, C) float64 row-stochastic matrix, rows clean, columns noisy.

    Raises:
        ValueError: a mode without an expected transition (ellipse, morph: the noise depends on shape, so no
            transition describes it), or an invalid argument.
    """
    if mode not in EXPECTED_TRANSITION_MODES:
        raise ValueError(f"expected a mode with a class transition {EXPECTED_TRANSITION_MODES}, got {mode!r}")
    if num_classes < 2:
        raise ValueError(f"expected num_classes >= 2, got {num_classes}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"expected 0 <= fraction <= 1, got {fraction}")
    if mode == "transition":
        if transition is None:
            raise ValueError("mode 'transition' needs a transition matrix, got None")
        matrix = check_transition(transition, num_classes)
    else:
        rates = check_class_rates(default_rate(mode) if rate is None else rate, num_classes)
        if mode == "omission":
            rates[0] = 0.0  # background is never erased
            matrix = np.diag(1.0 - rates)
            matrix[:, 0] += rates
        elif mode == "symmetric":
            matrix = np.outer(rates / (num_classes - 1), np.ones(num_classes))
            np.fill_diagonal(matrix, 1.0 - rates)
        else:
            targets = _check_class_map(class_map, num_classes)
            matrix = np.diag(1.0 - rates)
            matrix[np.arange(num_classes), targets] += rates
    return (1.0 - fraction) * np.eye(num_classes) + fraction * matrix


def default_rate(mode: str) -> float:
    """The rate of ``mode`` when none is given: 0.3 for omission, 0.5 for the flip modes."""
    return DEFAULT_RATES.get(mode, 0.5)


def _check_class_map(class_map: Sequence[int] | None, num_classes: int) -> list[int]:
    """The asymmetric targets, default (c + 1) mod C; ``ValueError`` unless C classes in 0..C-1."""
    targets = [(c + 1) % num_classes for c in range(num_classes)] if class_map is None else list(class_map)
    if len(targets) != num_classes or not all(0 <= t < num_classes for t in targets):
        raise ValueError(f"expected class_map of {num_classes} classes in 0..{num_classes - 1}, got {class_map}")
    return targets


def ellipse_noise(label: np.ndarray, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Replace each connected component of each foreground class by its moment ellipse (2D) or ellipsoid (3D).

    A component with centroid mu and pixel covariance S (plus 1/12 per axis: pixels are unit cells, Sheppard's
    correction) becomes {x : (x - mu)^T S^-1 (x - mu) <= d + 2}, d the number of spatial dims: semi-axes
    2 sqrt(lambda) in 2D and sqrt(5 lambda) in 3D, so a solid ellipse (ellipsoid) maps to itself. Components
    (8-/26-connected) are painted on background, larger first, so small parts stay on top; ties by class, then
    by position. Pixels equal to ``ignore_index`` keep their value and are never painted. Axes of size 1 are
    dropped first: an (H, W, 1) map gets 2D ellipses.

    Args:
        label: H[WD] integer class map, 0 = background, 1..C-1 foreground.
        num_classes: C, including background.
        ignore_index: value left untouched.

    Returns:
        H[WD] noisy class map, same dtype.
    """
    flat = tuple(i for i, n in enumerate(label.shape) if n == 1)
    if flat and len(flat) < label.ndim:  # an (H, W, 1) map is 2D: its ellipses must be 2D ones
        return ellipse_noise(label.squeeze(flat), num_classes, ignore_index).reshape(label.shape)
    structure = ndimage.generate_binary_structure(label.ndim, label.ndim)
    parts: list[tuple[int, int, int, np.ndarray]] = []
    for c in range(1, num_classes):
        components, _ = ndimage.label(label == c, structure)
        for k, box in enumerate(ndimage.find_objects(components), start=1):
            coords = np.argwhere(components[box] == k) + np.array([s.start for s in box])
            parts.append((len(coords), c, k, coords))
    parts.sort(key=lambda p: (-p[0], p[1], p[2]))

    out = np.zeros_like(label)
    level = label.ndim + 2.0
    shape = np.array(label.shape)
    for _, c, _, coords in parts:
        mu = coords.mean(axis=0)
        cov = np.atleast_2d(np.cov(coords.T, bias=True)) + np.eye(label.ndim) / 12.0
        half = np.sqrt(level * np.diag(cov))
        lo = np.clip(np.floor(mu - half).astype(int), 0, shape)
        hi = np.clip(np.ceil(mu + half).astype(int) + 1, 0, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        offset = np.indices(hi - lo, dtype=float) + (lo - mu).reshape(-1, *([1] * label.ndim))
        quad = np.einsum("i...,ij,j...->...", offset, np.linalg.inv(cov), offset)
        out[box][quad <= level + 1e-9] = c
    if ignore_index is not None:
        out[label == ignore_index] = ignore_index
    return out


def morph_noise(
    label: np.ndarray, operations: Sequence[tuple[int, str, int]], ignore_index: int | None = None
) -> np.ndarray:
    """Erode or dilate classes with a Euclidean ball (disk) of integer radius.

    Erosion of class c by radius r removes the pixels within distance r of a non-c pixel; they become background
    (0). The image border is not a boundary: a part cut by the frame does not erode from it. Dilation by r claims
    every pixel within distance r of class c, overwriting background and the classes that are not themselves
    dilated; a dilated class never loses its own pixels, and a pixel claimed by several dilated classes goes to
    the nearest (ties: the first in ``operations``). Erosions use the clean label, so an eroded class is a subset
    of its clean region and a dilated class a superset. Ignored pixels are never changed (they count as "not c").
    The ball operations are computed exactly with ``scipy.ndimage.distance_transform_edt``; they equal
    ``binary_erosion``/``binary_dilation`` with the ball structuring element {|o| <= r} (erosion with
    ``border_value=1``). Radii are in pixels (voxels).

    Args:
        label: H[WD] integer class map.
        operations: (class, "erode" or "dilate", radius) triples.
        ignore_index: value left untouched.

    Returns:
        H[WD] noisy class map, same dtype.
    """
    out = label.copy()
    nearest = np.full(label.shape, np.inf)
    protected = np.zeros(label.shape, dtype=bool) if ignore_index is None else label == ignore_index
    grown: list[tuple[int, np.ndarray]] = []
    for c, op, radius in operations:
        mask = label == c
        if radius <= 0 or not mask.any() or (op == "erode" and mask.all()):
            continue
        if op == "erode":
            out[mask & (ndimage.distance_transform_edt(mask) <= radius)] = 0
        elif op == "dilate":
            distance = ndimage.distance_transform_edt(~mask)
            distance[distance > radius] = np.inf
            grown.append((c, distance))
            protected |= mask
        else:
            raise ValueError(f"expected operation 'erode' or 'dilate' for class {c}, got {op!r}")
    for c, distance in grown:
        take = (distance < nearest) & ~protected
        nearest[take] = distance[take]
        out[take] = c
    return out


def foreground_parts(label: np.ndarray, num_classes: int) -> list[tuple[int, np.ndarray]]:
    """The connected parts of each foreground class (8-connected in 2D, 26 in 3D) as (class, boolean mask) pairs,
    class by class (1..C-1), each class's parts in ``scipy.ndimage.label`` order (raster order of first pixel)."""
    structure = ndimage.generate_binary_structure(label.ndim, label.ndim)
    parts = []
    for c in range(1, num_classes):
        components, count = ndimage.label(label == c, structure)
        parts += [(c, components == k) for k in range(1, count + 1)]
    return parts


def omission_noise(label: np.ndarray, erase: Sequence[bool], num_classes: int) -> np.ndarray:
    """Erase to background (0) the foreground parts of :func:`foreground_parts` whose entry of ``erase`` is true.

    A structure the annotator left out: the whole connected part of its class becomes background, every other pixel
    (and ``ignore_index``, which is not a class) keeps its value.

    Args:
        label: H[WD] integer class map.
        erase: one flag per part, in :func:`foreground_parts` order.
        num_classes: C, including background.

    Returns:
        H[WD] noisy class map, same dtype.
    """
    parts = foreground_parts(label, num_classes)
    if len(erase) != len(parts):
        raise ValueError(f"expected one erase flag per foreground part ({len(parts)}), got {len(erase)}")
    out = label.copy()
    for (_, mask), flag in zip(parts, erase, strict=True):
        if flag:
            out[mask] = 0
    return out


def symmetric_noise(
    label: np.ndarray, flip: np.ndarray, offset: np.ndarray, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Flip the pixels where ``flip`` is true to (label + offset) mod C, offset in 1..C-1 (so always another class).

    With ``offset`` uniform on 1..C-1 the new class is uniform over the C-1 other classes.
    """
    flip = flip if ignore_index is None else flip & (label != ignore_index)
    out = label.copy()
    out[flip] = (label[flip].astype(np.int64) + offset[flip]) % num_classes
    return out


def asymmetric_noise(
    label: np.ndarray, flip: np.ndarray, class_map: Sequence[int], ignore_index: int | None = None
) -> np.ndarray:
    """Flip the pixels where ``flip`` is true from class c to ``class_map[c]``."""
    flip = flip if ignore_index is None else flip & (label != ignore_index)
    out = label.copy()
    out[flip] = np.asarray(class_map)[label[flip].astype(np.int64)]
    return out


def transition_noise(
    label: np.ndarray, uniform: np.ndarray, transition: np.ndarray, ignore_index: int | None = None
) -> np.ndarray:
    """Give a pixel of clean class i with uniform draw u the noisy class j where cum_i[j-1] <= u < cum_i[j].

    cum_i is the cumulative sum of row i of the (C, C) row-stochastic ``transition`` (inverse CDF), so with ``u``
    uniform on [0, 1) the pixel gets class j with probability ``transition[i, j]``.

    Args:
        label: H[WD] integer class map.
        uniform: H[WD] draws in [0, 1).
        transition: (C, C) row-stochastic matrix, rows clean, columns noisy.
        ignore_index: value left untouched.

    Returns:
        H[WD] noisy class map, same dtype.
    """
    num_classes = transition.shape[0]
    cumulative = np.cumsum(transition, axis=1)
    last = num_classes - 1 - np.argmax(transition[:, ::-1] > 0, axis=1)  # last class of non-zero probability
    cumulative[np.arange(num_classes)[None, :] >= last[:, None]] = np.inf  # rounding never picks a class after it
    out = label.copy()
    for c in range(num_classes):  # ignore_index is not a class, so its pixels are never selected
        mask = label == c
        out[mask] = np.searchsorted(cumulative[c], uniform[mask], side="right")
    return out


class SimulateLabelNoise(RandomizableTransform):
    """Corrupt a clean label map with simulated annotation noise (Guo & Yuan, MICCAI 2022, JCAS).

    Modes: ``"ellipse"`` (:func:`ellipse_noise`, no randomness), ``"morph"`` (each foreground class eroded or
    dilated with probability 1/2, radius uniform on the integers ``radius[0]..radius[1]``, see :func:`morph_noise`),
    ``"symmetric"`` (each pixel of class c, background included, flipped with probability ``rate`` (or ``rate[c]``)
    to a uniformly chosen other class), ``"asymmetric"`` (flipped with probability ``rate`` (or ``rate[c]``) to
    ``class_map[c]``, default (c + 1) mod C), ``"transition"`` (a pixel of class i becomes class j with probability
    ``transition[i, j]``, see :func:`transition_noise`), ``"omission"`` (each connected part of a foreground class c
    erased to background with probability ``rate`` (or ``rate[c]``), default 0.3: a structure the annotator left
    out, see :func:`omission_noise`). Symmetric, asymmetric and transition are class-conditional; they and omission
    have the expected transition :func:`noise_transition_matrix`. Each call corrupts the image with probability
    ``fraction`` (else returns it unchanged; :attr:`corrupts` tells which). Pixels equal to ``ignore_index`` never
    change. Every random number is drawn from ``self.R`` in :meth:`randomize` (symmetric, asymmetric, transition:
    one uniform per pixel, plus one offset per pixel for symmetric; omission: one uniform per part), so
    ``set_random_state`` (and ``monai.utils.set_determinism`` through ``Compose``) make it reproducible.

    Systematic confusion, e.g. "wrist (2) labelled shaft (1) in 60 % of its pixels, other classes clean", is
    ``SimulateLabelNoise("asymmetric", 4, rate=[0, 0, 0.6, 0], class_map=[0, 1, 1, 3])`` or equivalently
    ``SimulateLabelNoise("transition", 4, transition=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0.6, 0.4, 0], [0, 0, 0, 1]])``.

    Args:
        mode: one of ``NOISE_MODES``.
        num_classes: C, including background 0.
        rate: per-pixel flip probability (symmetric, asymmetric) or per-part erase probability (omission), one for all
            classes or C per-class rates; None: 0.3 for omission, 0.5 otherwise.
        radius: inclusive (min, max) morphology radius in pixels, or one int (morph).
        fraction: share of calls that corrupt the label (alpha in the literature).
        class_map: target class of each class for asymmetric noise, length C; a class mapped to itself never
            changes.
        ignore_index: label value never changed; must not be a class.
        transition: (C, C) row-stochastic matrix, ``transition[i, j] = p(noisy = j | clean = i)`` (transition mode
            only, where it is required).

    Raises:
        ValueError: on an unknown mode or out-of-range argument (a rate outside [0, 1] or not C of them; a
            transition that is not C x C, has a negative entry or a row not summing to 1; a transition given to
            another mode); when called, on a label that is not 1H[WD] or holds values other than 0..C-1 and
            ``ignore_index``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        mode: str,
        num_classes: int,
        rate: float | Sequence[float] | None = None,
        radius: int | Sequence[int] = (2, 6),
        fraction: float = 1.0,
        class_map: Sequence[int] | None = None,
        ignore_index: int | None = None,
        transition: Sequence[Sequence[float]] | np.ndarray | None = None,
    ) -> None:
        if mode not in NOISE_MODES:
            raise ValueError(f"expected mode in {NOISE_MODES}, got {mode!r}")
        if num_classes < 2:
            raise ValueError(f"expected num_classes >= 2, got {num_classes}")
        rate = default_rate(mode) if rate is None else rate
        class_rates = check_class_rates(rate, num_classes)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"expected 0 <= fraction <= 1, got {fraction}")
        radii = (int(radius), int(radius)) if isinstance(radius, int) else tuple(int(r) for r in radius)
        if len(radii) != 2 or not 0 <= radii[0] <= radii[1]:
            raise ValueError(f"expected radius (min, max) with 0 <= min <= max, got {radius}")
        class_map = _check_class_map(class_map, num_classes)
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(f"expected ignore_index outside the classes 0..{num_classes - 1}, got {ignore_index}")
        if mode == "transition" and transition is None:
            raise ValueError("mode 'transition' needs a C x C transition matrix, got transition=None")
        if mode != "transition" and transition is not None:
            raise ValueError(f"a transition matrix is only used by mode 'transition', got mode {mode!r}")
        RandomizableTransform.__init__(self, prob=fraction)
        self.mode, self.num_classes, self.radius = mode, num_classes, radii
        self.rate: float | list[float] = float(rate) if np.ndim(rate) == 0 else class_rates.tolist()
        self.class_rates = class_rates
        self.class_map, self.ignore_index = class_map, ignore_index
        self.transition = None if transition is None else check_transition(transition, num_classes)
        self._operations: list[tuple[int, str, int]] = []
        self._uniform: np.ndarray | None = None
        self._offset: np.ndarray | None = None

    @property
    def corrupts(self) -> bool:
        """Whether the last :meth:`randomize` chose to corrupt the image (probability ``fraction``)."""
        return bool(self._do_transform)

    def randomize(self, data: NdarrayOrTensor) -> None:
        """Draw whether to corrupt this image and the mode's parameters for a 1H[WD] label ``data``."""
        super().randomize(None)
        if not self._do_transform:
            return
        if self.mode == "morph":
            self._operations = []
            for c in range(1, self.num_classes):
                op = "erode" if self.R.rand() < 0.5 else "dilate"
                self._operations.append((c, op, int(self.R.randint(self.radius[0], self.radius[1] + 1))))
        elif self.mode in CLASS_CONDITIONAL_MODES:
            shape = tuple(data.shape[1:])
            self._uniform = self.R.random_sample(shape)
            if self.mode == "symmetric":
                self._offset = self.R.randint(1, self.num_classes, size=shape, dtype=np.int16)
        elif self.mode == "omission":
            label = convert_data_type(data, np.ndarray)[0][0]
            self._uniform = self.R.random_sample(len(foreground_parts(label, self.num_classes)))

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """Return a noisy copy of ``img`` (1H[WD] class map), same type, dtype, shape and meta data."""
        if img.ndim not in (3, 4) or img.shape[0] != 1:
            raise ValueError(f"expected a 1H[WD] label, got shape {tuple(img.shape)}")
        if randomize:
            self.randomize(img)
        if not self._do_transform:
            return img
        label = convert_data_type(img, np.ndarray)[0][0]
        check_label_values(label, self.num_classes, self.ignore_index)
        label = label.astype(np.int64)
        if self.mode == "ellipse":
            noisy = ellipse_noise(label, self.num_classes, self.ignore_index)
        elif self.mode == "morph":
            noisy = morph_noise(label, self._operations, self.ignore_index)
        elif self.mode == "omission":
            parts = foreground_parts(label, self.num_classes)
            if self._uniform is None or len(self._uniform) != len(parts):
                drawn = None if self._uniform is None else len(self._uniform)
                raise ValueError(f"noise drawn for {drawn} parts, the label has {len(parts)}; call randomize first")
            erase = [u < self.class_rates[c] for (c, _), u in zip(parts, self._uniform, strict=True)]
            noisy = omission_noise(label, erase, self.num_classes)
        else:
            if self._uniform is None or self._uniform.shape != label.shape:
                drawn = None if self._uniform is None else self._uniform.shape
                raise ValueError(f"noise drawn for spatial shape {drawn}, got {label.shape}; call randomize first")
            if self.mode == "transition":
                noisy = transition_noise(label, self._uniform, self.transition, self.ignore_index)
            else:
                is_class = (label >= 0) & (label < self.num_classes)  # not ignore_index
                flip = is_class & (self._uniform < self.class_rates[np.where(is_class, label, 0)])
                if self.mode == "symmetric":
                    noisy = symmetric_noise(label, flip, self._offset, self.num_classes, self.ignore_index)
                else:
                    noisy = asymmetric_noise(label, flip, self.class_map, self.ignore_index)
        return convert_to_dst_type(noisy[None], dst=img)[0]


class SimulateLabelNoised(Randomizable, MapTransform):
    """Dictionary form of :class:`SimulateLabelNoise`.

    All keys share one draw (the same corrupt-or-not decision, morphology choices and per-pixel uniforms), so they
    must have the same spatial shape in the class-conditional modes; use one transform per key for independent
    noise.
    """

    backend = SimulateLabelNoise.backend

    def __init__(
        self,
        keys: KeysCollection,
        mode: str,
        num_classes: int,
        rate: float | Sequence[float] | None = None,
        radius: int | Sequence[int] = (2, 6),
        fraction: float = 1.0,
        class_map: Sequence[int] | None = None,
        ignore_index: int | None = None,
        transition: Sequence[Sequence[float]] | np.ndarray | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.noise = SimulateLabelNoise(mode, num_classes, rate, radius, fraction, class_map, ignore_index, transition)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> SimulateLabelNoised:
        super().set_random_state(seed, state)
        self.noise.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.noise.randomize(data)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        first_key: Hashable = self.first_key(d)
        if first_key == ():
            return d
        self.randomize(d[first_key])
        for key in self.key_iterator(d):
            d[key] = self.noise(d[key], randomize=False)
        return d
