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
"""Simulated label noise (ellipse, morphological, symmetric, asymmetric) as MONAI random transforms.

The modes follow the noise settings of Guo & Yuan, "Joint Class-Affinity Loss Correction for Robust Medical Image
Segmentation with Noisy Labels", MICCAI 2022, plus the morphological noise common in this literature. The maths sits
in the pure functions on spatial label maps (``H[WD]``, no channel); the transforms draw the random numbers.
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
    "NOISE_MODES",
    "SimulateLabelNoise",
    "SimulateLabelNoised",
    "asymmetric_noise",
    "check_label_values",
    "ellipse_noise",
    "morph_noise",
    "symmetric_noise",
]

NOISE_MODES = ("ellipse", "morph", "symmetric", "asymmetric")


def check_label_values(label: np.ndarray, num_classes: int, ignore_index: int | None = None) -> None:
    """Raise ``ValueError`` unless every value of ``label`` is an integer in 0..num_classes-1 or ``ignore_index``."""
    values = np.unique(label)
    bad = values[(values != np.round(values)) | (values < 0) | (values >= num_classes)]
    if ignore_index is not None:
        bad = bad[bad != ignore_index]
    if bad.size:
        allowed = f"0..{num_classes - 1}" + ("" if ignore_index is None else f" or ignore_index {ignore_index}")
        raise ValueError(f"expected label values in {allowed}, got {bad[:8].tolist()}")


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


class SimulateLabelNoise(RandomizableTransform):
    """Corrupt a clean label map with simulated annotation noise (Guo & Yuan, MICCAI 2022, JCAS).

    Modes: ``"ellipse"`` (:func:`ellipse_noise`, no randomness), ``"morph"`` (each foreground class eroded or
    dilated with probability 1/2, radius uniform on the integers ``radius[0]..radius[1]``, see :func:`morph_noise`),
    ``"symmetric"`` (each pixel, background included, flipped with probability ``rate`` to a uniformly chosen other
    class), ``"asymmetric"`` (flipped with probability ``rate`` to ``class_map[c]``, default (c + 1) mod C). Each
    call corrupts the image with probability ``fraction`` (else returns it unchanged). Pixels equal to
    ``ignore_index`` never change. Every random number is drawn from ``self.R`` in :meth:`randomize`, so
    ``set_random_state`` (and ``monai.utils.set_determinism`` through ``Compose``) make it reproducible.

    Args:
        mode: one of ``NOISE_MODES``.
        num_classes: C, including background 0.
        rate: per-pixel flip probability (symmetric, asymmetric).
        radius: inclusive (min, max) morphology radius in pixels, or one int (morph).
        fraction: share of calls that corrupt the label (alpha in the literature).
        class_map: target class of each class for asymmetric noise, length C.
        ignore_index: label value never changed; must not be a class.

    Raises:
        ValueError: on an unknown mode or out-of-range argument; when called, on a label that is not 1H[WD] or
            holds values other than 0..C-1 and ``ignore_index``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        mode: str,
        num_classes: int,
        rate: float = 0.5,
        radius: int | Sequence[int] = (2, 6),
        fraction: float = 1.0,
        class_map: Sequence[int] | None = None,
        ignore_index: int | None = None,
    ) -> None:
        if mode not in NOISE_MODES:
            raise ValueError(f"expected mode in {NOISE_MODES}, got {mode!r}")
        if num_classes < 2:
            raise ValueError(f"expected num_classes >= 2, got {num_classes}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"expected 0 <= rate <= 1, got {rate}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"expected 0 <= fraction <= 1, got {fraction}")
        radii = (int(radius), int(radius)) if isinstance(radius, int) else tuple(int(r) for r in radius)
        if len(radii) != 2 or not 0 <= radii[0] <= radii[1]:
            raise ValueError(f"expected radius (min, max) with 0 <= min <= max, got {radius}")
        class_map = [(c + 1) % num_classes for c in range(num_classes)] if class_map is None else list(class_map)
        if len(class_map) != num_classes or not all(0 <= t < num_classes for t in class_map):
            raise ValueError(f"expected class_map of {num_classes} classes in 0..{num_classes - 1}, got {class_map}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(f"expected ignore_index outside the classes 0..{num_classes - 1}, got {ignore_index}")
        RandomizableTransform.__init__(self, prob=fraction)
        self.mode, self.num_classes, self.rate, self.radius = mode, num_classes, rate, radii
        self.class_map, self.ignore_index = class_map, ignore_index
        self._operations: list[tuple[int, str, int]] = []
        self._flip: np.ndarray | None = None
        self._offset: np.ndarray | None = None

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
        elif self.mode in ("symmetric", "asymmetric"):
            shape = tuple(data.shape[1:])
            self._flip = self.R.random_sample(shape) < self.rate
            if self.mode == "symmetric":
                self._offset = self.R.randint(1, self.num_classes, size=shape, dtype=np.int16)

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
        else:
            if self._flip is None or self._flip.shape != label.shape:
                drawn = None if self._flip is None else self._flip.shape
                raise ValueError(f"noise drawn for spatial shape {drawn}, got {label.shape}; call randomize first")
            if self.mode == "symmetric":
                noisy = symmetric_noise(label, self._flip, self._offset, self.num_classes, self.ignore_index)
            else:
                noisy = asymmetric_noise(label, self._flip, self.class_map, self.ignore_index)
        return convert_to_dst_type(noisy[None], dst=img)[0]


class SimulateLabelNoised(Randomizable, MapTransform):
    """Dictionary form of :class:`SimulateLabelNoise`.

    All keys share one draw (the same corrupt-or-not decision, morphology choices and flip masks), so they must
    have the same spatial shape in the symmetric and asymmetric modes; use one transform per key for independent
    noise.
    """

    backend = SimulateLabelNoise.backend

    def __init__(
        self,
        keys: KeysCollection,
        mode: str,
        num_classes: int,
        rate: float = 0.5,
        radius: int | Sequence[int] = (2, 6),
        fraction: float = 1.0,
        class_map: Sequence[int] | None = None,
        ignore_index: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.noise = SimulateLabelNoise(mode, num_classes, rate, radius, fraction, class_map, ignore_index)

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
