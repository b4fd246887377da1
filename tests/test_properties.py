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
"""Property-based tests (hypothesis) of the loaders, the label checks, the noise transforms and the losses.

Random shapes, dtypes and value ranges, and random-byte, truncated or corrupted PNG, NIfTI and DICOM files: either the
result has the documented properties, or the error is one the bundle raises itself (in ``scripts/``), of a documented
type, naming the file where there is one. Every example runs under an alarm, so a hang fails the test. The whole
file takes well under a minute on one CPU core (few examples, tiny arrays, ``deadline=None``, no example database).
"""

from __future__ import annotations

import itertools
import math
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from monai.data import MetaTensor
from PIL import Image
from pydicom.data import get_testdata_file
from scripts.data import CheckImageLabeld, LoadImageByFormatd
from scripts.losses import CALCLoss, affinity_bce, forward_corrected_nll
from scripts.noise import NOISE_MODES, SimulateLabelNoise

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SETTINGS = settings(  # CI (CI=true) runs the same examples every time; elsewhere each run draws new ones
    max_examples=20,
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
MAX_NLL = -math.log(1e-10) + 1e-3  # the losses clamp probabilities at 1e-10 before the log
MIN_NLL = -1e-6  # a probability of 1 may round to 1 + 2e-16, whose log is above 0
IGNORE = 255
_names = itertools.count()


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail with ``TimeoutError`` when the block runs longer than ``seconds`` (SIGALRM: Unix, main thread)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def raised_in_scripts(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().parent == SCRIPTS


def assert_bundle_error(error: BaseException, path: str | None = None) -> None:
    """``error`` is the bundle's own: raised in ``scripts/``, of a documented type, naming ``path``.

    ``LoadImageByFormatd`` documents ``RuntimeError("cannot read <key> '<file>' ...")`` for a file its reader cannot
    decode (the reader's error is its cause); the other documented errors are ValueError, FileNotFoundError and
    TypeError.
    """
    ours = isinstance(error, (ValueError, FileNotFoundError, TypeError)) or (
        type(error) is RuntimeError and str(error).startswith("cannot read ")
    )
    assert ours and raised_in_scripts(error), f"{type(error).__name__}: {error}"
    if path is not None:
        assert str(path) in str(error), str(error)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


def new_path(folder: Path, suffix: str) -> Path:
    return folder / f"file_{next(_names)}{suffix}"


# ---------------------------------------------------------------------------------------------------- loaders


SUFFIXES = [".png", ".jpg", ".bmp", ".nii", ".nii.gz", ".dcm", ".mha", ".nrrd", ".npy", ".npz", "", ".txt"]


@SETTINGS
@given(suffix=st.sampled_from(SUFFIXES), content=st.binary(max_size=1024), dicom_magic=st.booleans())
def test_random_bytes_load_or_name_the_file(folder, suffix, content, dicom_magic):
    if dicom_magic:  # past the format table: sniffed as DICOM
        content = content.ljust(128, b"\0")[:128] + b"DICM" + content[128:]
    path = new_path(folder, suffix)
    path.write_bytes(content)
    with within(20):
        try:
            out = LoadImageByFormatd(keys="image")({"image": str(path)})
        except Exception as e:
            event(f"{suffix or 'no suffix'}: {type(e).__name__}")
            assert_bundle_error(e, str(path))
        else:
            event(f"{suffix or 'no suffix'}: loaded")
            assert isinstance(out["image"], torch.Tensor)


def write_image(kind: str, array: np.ndarray, path: Path) -> None:
    if kind == "png":
        Image.fromarray(array).save(path)
    else:
        nib.save(nib.Nifti1Image(array, np.diag([1.0, 1.5, 2.0, 1.0])), path)


PNG_ARRAYS = st.one_of(
    arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12))),
    arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(3))),
    arrays(np.uint16, st.tuples(st.integers(1, 12), st.integers(1, 12))),
)
NIFTI_ARRAYS = st.sampled_from([np.uint8, np.int16, np.int32, np.float32, np.float64]).flatmap(
    lambda dtype: arrays(
        dtype,
        st.lists(st.integers(1, 7), min_size=2, max_size=3).map(tuple),
        elements=st.floats(-1e6, 1e6, width=32) if np.dtype(dtype).kind == "f" else None,
    )
)
PNG_FILES = st.tuples(st.just("png"), st.just(".png"), PNG_ARRAYS)
NIFTI_FILES = st.tuples(st.just("nifti"), st.sampled_from([".nii", ".nii.gz"]), NIFTI_ARRAYS)
FILES = st.one_of(PNG_FILES, NIFTI_FILES)


@SETTINGS
@given(file=FILES)
def test_valid_files_round_trip(folder, file):
    kind, suffix, array = file
    path = new_path(folder, suffix)
    write_image(kind, array, path)
    with within(20):
        image = LoadImageByFormatd(keys="image", ensure_channel_first=True)({"image": str(path)})["image"]
    expected = array.astype(np.float32)
    if kind == "png":  # MONAI reads 2D formats W x H, channels last
        expected = np.moveaxis(expected.swapaxes(0, 1), 2, 0) if array.ndim == 3 else expected.T[None]
    else:
        expected = expected[None]
    assert image.dtype == torch.float32 and image.meta["filename_or_obj"] == str(path)
    np.testing.assert_array_equal(image.numpy(), expected)


DICOM = Path(get_testdata_file("CT_small.dcm")).read_bytes()


@SETTINGS
@given(
    file=st.one_of(PNG_FILES, NIFTI_FILES, st.just(("dicom", ".dcm", None))),
    damage=st.one_of(
        st.tuples(st.just("truncate"), st.floats(0.0, 0.999)),
        st.tuples(
            st.just("overwrite"), st.lists(st.tuples(st.floats(0, 0.999), st.integers(0, 255)), min_size=1, max_size=16)
        ),
    ),
)
def test_damaged_files_load_or_name_the_file(folder, file, damage):
    kind, suffix, array = file
    path = new_path(folder, suffix)
    if kind == "dicom":
        path.write_bytes(DICOM)
    else:
        write_image(kind, array, path)
    content = bytearray(path.read_bytes())
    if damage[0] == "truncate":
        content = content[: int(damage[1] * len(content))]
    else:
        for where, value in damage[1]:
            content[int(where * len(content))] = value
    path.write_bytes(bytes(content))
    keys = ("image", "label")
    pipeline = [LoadImageByFormatd(keys=keys, ensure_channel_first=True), CheckImageLabeld(keys, num_classes=256)]
    with within(20):
        try:
            data = {"image": str(path), "label": str(path)}
            for transform in pipeline:
                data = transform(data)
            event(f"{kind}, {damage[0]}: loaded and checked")
        except Exception as e:
            event(f"{kind}, {damage[0]}: {type(e).__name__}")
            assert_bundle_error(e, str(path))


@st.composite
def image_and_label(draw: st.DrawFn) -> tuple[dict, dict, bool]:
    """A checked pair and its arguments, and whether CheckImageLabeld must accept it (worked out independently)."""
    dims = draw(st.sampled_from([2, 3]))
    spatial = tuple(draw(st.lists(st.integers(1, 5), min_size=dims, max_size=dims)))
    channels = draw(st.integers(1, 4))
    num_classes = draw(st.integers(1, 6))
    ignore = draw(st.sampled_from([None, IGNORE, -1]))
    image = draw(arrays(np.float32, (channels, *spatial), elements=st.floats(-1e3, 1e3, width=32)))
    if draw(st.booleans()):  # sometimes a NaN or an infinity
        image.flat[draw(st.integers(0, image.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    label_spatial = spatial if draw(st.integers(0, 4)) else tuple(s + 1 for s in spatial)
    label_dtype = draw(st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.float64]))
    elements = st.one_of(st.integers(0, num_classes - 1), st.sampled_from([num_classes, IGNORE, -1, 0.5]))
    label = draw(arrays(np.float64, (1, *label_spatial), elements=elements))
    if np.dtype(label_dtype).kind in "ui":  # as an integer file holds it: no fractions, -1 wrapped (uint8: 255)
        label = np.floor(label).astype(np.int64)
    label = label.astype(label_dtype)
    expect_channels = draw(st.sampled_from([channels, channels + 1]))
    expect_dims = draw(st.sampled_from([dims, dims, 5 - dims]))
    kwargs = {"num_classes": num_classes, "image_channels": expect_channels, "spatial_dims": expect_dims}
    kwargs["ignore_index"] = ignore
    values = label.astype(np.float64)
    allowed = (values >= 0) & (values < num_classes) & (values == np.round(values))
    if ignore is not None:
        allowed |= values == ignore
    valid = (
        expect_dims == dims
        and expect_channels == channels
        and bool(np.isfinite(image).all())
        and label_spatial == spatial
        and bool(allowed.all())
    )
    data = {
        "image": MetaTensor(torch.from_numpy(image), meta={"filename_or_obj": "/data/images/case.nii.gz"}),
        "label": MetaTensor(torch.from_numpy(label), meta={"filename_or_obj": "/data/lab.png"}),
    }
    return data, kwargs, valid


@SETTINGS
@given(case=image_and_label())
def test_check_image_label_accepts_exactly_the_valid(case):
    data, kwargs, valid = case
    check = CheckImageLabeld(("image", "label"), **kwargs)
    try:
        out = check(data)
    except ValueError as e:
        assert not valid, str(e)
        assert_bundle_error(e)
        assert "'/data/images/case.nii.gz'" in str(e) or "'/data/lab.png'" in str(e), str(e)
    else:
        assert valid and out["label"] is data["label"]


def test_uint8_255_is_not_ignore_index_minus_1():
    """Found by the property above: torch compares a uint8 255 equal to -1."""
    data = {
        "image": MetaTensor(torch.zeros(1, 2, 2)),
        "label": MetaTensor(torch.full((1, 2, 2), 255, dtype=torch.uint8)),
    }
    data["label"].meta["filename_or_obj"] = "/data/lab.png"
    with pytest.raises(ValueError, match="'/data/lab.png': label values must be in 0..2 or -1"):
        CheckImageLabeld(("image", "label"), num_classes=3, ignore_index=-1)(data)


# ----------------------------------------------------------------------------------------------- noise transforms


@st.composite
def noise_case(draw: st.DrawFn) -> tuple[SimulateLabelNoise, np.ndarray | torch.Tensor, int | None]:
    mode = draw(st.sampled_from(NOISE_MODES))
    num_classes = draw(st.integers(2, 5))
    ignore = draw(st.sampled_from([None, IGNORE]))
    kwargs: dict = {"fraction": draw(st.sampled_from([0.0, 0.5, 1.0]))}
    if mode in ("symmetric", "asymmetric"):
        kwargs["rate"] = draw(
            st.one_of(st.floats(0, 1), st.lists(st.floats(0, 1), min_size=num_classes, max_size=num_classes))
        )
    if mode == "asymmetric" and draw(st.booleans()):
        kwargs["class_map"] = draw(
            st.lists(st.integers(0, num_classes - 1), min_size=num_classes, max_size=num_classes)
        )
    if mode == "morph":
        low = draw(st.integers(0, 3))
        kwargs["radius"] = (low, draw(st.integers(low, 4)))
    if mode == "transition":
        rows = draw(arrays(np.float64, (num_classes, num_classes), elements=st.floats(0, 1)))
        rows[np.arange(num_classes), draw(st.integers(0, num_classes - 1))] += 1e-3  # no all-zero row
        kwargs["transition"] = rows / rows.sum(axis=1, keepdims=True)
    noise = SimulateLabelNoise(mode, num_classes, ignore_index=ignore, **kwargs)
    noise.set_random_state(draw(st.integers(0, 2**31 - 1)))
    shape = (1, *draw(st.lists(st.integers(1, 9), min_size=2, max_size=3)))
    dtype = draw(st.sampled_from([np.uint8, np.int16, np.int32, np.int64]))
    values = list(range(num_classes)) + ([] if ignore is None else [ignore])
    label = draw(arrays(dtype, shape, elements=st.sampled_from(values)))
    return noise, (torch.from_numpy(label) if draw(st.booleans()) else label), ignore


@SETTINGS
@given(case=noise_case())
def test_noise_keeps_type_shape_classes_and_ignored_pixels(case):
    noise, label, ignore = case
    state = noise.R.get_state()
    with within(20):
        noisy = noise(label)
    assert type(noisy) is type(label) and noisy.shape == label.shape and noisy.dtype == label.dtype
    out, clean = np.asarray(noisy), np.asarray(label)
    classes = set(range(noise.num_classes)) | ({ignore} if ignore is not None else set())
    assert set(np.unique(out).tolist()) <= classes
    if ignore is not None:
        assert ((out == ignore) == (clean == ignore)).all()  # ignored pixels never change, none is made
    noise.R.set_state(state)
    np.testing.assert_array_equal(np.asarray(noise(label)), out)  # the same random state, the same noise
    if noise.prob == 0:
        assert noisy is label


@SETTINGS
@given(
    mode=st.sampled_from(NOISE_MODES),
    num_classes=st.integers(-1, 5),
    rate=st.one_of(st.floats(-1, 2), st.just(math.nan), st.lists(st.floats(-1, 2), max_size=6)),
    fraction=st.floats(-0.5, 1.5),
    radius=st.tuples(st.integers(-2, 5), st.integers(-2, 5)),
    ignore=st.sampled_from([None, 0, 1, IGNORE]),
    transition=st.one_of(st.none(), arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 5)))),
)
def test_noise_arguments_are_checked(mode, num_classes, rate, fraction, radius, ignore, transition):
    try:
        noise = SimulateLabelNoise(
            mode, num_classes, rate, radius, fraction, ignore_index=ignore, transition=transition
        )
    except ValueError as e:
        assert_bundle_error(e)
        return
    label = np.arange(16).reshape(1, 4, 4) % num_classes
    assert set(np.unique(noise(label)).tolist()) <= set(range(num_classes))


@SETTINGS
@given(
    mode=st.sampled_from(NOISE_MODES),
    bad=st.sampled_from([-1, 4, 7, 254]),
    shape=st.sampled_from([(1, 5, 5), (1, 3, 4, 5), (5, 5), (2, 5, 5), (1, 1, 1, 1, 5)]),
)
def test_noise_rejects_labels_outside_the_classes(mode, bad, shape):
    transition = np.eye(4) if mode == "transition" else None
    label = np.zeros(shape, np.int64)
    label.flat[-1] = bad
    with pytest.raises(ValueError) as error:
        SimulateLabelNoise(mode, 4, transition=transition, ignore_index=IGNORE)(label)
    assert_bundle_error(error.value)


# --------------------------------------------------------------------------------------------------------- losses


@st.composite
def logits_and_target(draw: st.DrawFn, scale: float = 50.0) -> tuple[torch.Tensor, torch.Tensor, int]:
    batch, num_classes = draw(st.integers(1, 3)), draw(st.integers(2, 5))
    spatial = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
    logits = draw(arrays(np.float64, (batch, num_classes, *spatial), elements=st.floats(-scale, scale)))
    target = draw(arrays(np.int64, (batch, *spatial), elements=st.sampled_from([*range(num_classes), IGNORE])))
    target.flat[draw(st.integers(0, target.size - 1))] = draw(st.integers(0, num_classes - 1))  # one labelled pixel
    return torch.tensor(logits, dtype=dtype, requires_grad=True), torch.from_numpy(target), num_classes


def row_stochastic(draw: st.DrawFn, size: int) -> torch.Tensor:
    rows = draw(arrays(np.float64, (size, size), elements=st.floats(0, 1)))
    rows += np.eye(size) * 1e-3
    return torch.from_numpy(rows / rows.sum(axis=1, keepdims=True))


@SETTINGS
@given(case=logits_and_target(), data=st.data())
def test_forward_corrected_nll_is_finite_and_bounded(case, data):
    logits, target, num_classes = case
    kind = data.draw(st.sampled_from(["none", "identity", "random"]))
    t_class = {"none": None, "identity": torch.eye(num_classes)}.get(kind)
    if kind == "random":
        t_class = row_stochastic(data.draw, num_classes)
    loss = forward_corrected_nll(logits, target, t_class, IGNORE)
    assert loss.dtype in (torch.float32, torch.float64) and loss.ndim == 0
    assert MIN_NLL <= float(loss) <= (MAX_NLL if t_class is not None else math.inf)  # corrected: clamped at 1e-10
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    if kind == "none":
        expected = F.cross_entropy(logits.detach().float(), target, ignore_index=IGNORE)
        torch.testing.assert_close(loss.float(), expected, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(case=logits_and_target(scale=10.0))
def test_identity_correction_is_cross_entropy(case):
    logits, target, num_classes = case
    logits = logits.detach().double()
    corrected = forward_corrected_nll(logits, target, torch.eye(num_classes, dtype=torch.float64), IGNORE)
    torch.testing.assert_close(corrected, F.cross_entropy(logits, target, ignore_index=IGNORE))


def test_all_ignored_batch_gives_a_zero_loss():
    logits = torch.randn(2, 3, 4, 5)
    target = torch.full((2, 4, 5), IGNORE)
    assert forward_corrected_nll(logits, target, None, IGNORE).item() == 0.0
    assert forward_corrected_nll(logits, target, torch.eye(3), IGNORE).item() == 0.0


@st.composite
def embedding_and_target(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    batch, channels = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    grid = tuple(draw(st.lists(st.integers(1, 6), min_size=2, max_size=3)))
    raw = draw(arrays(np.float64, (batch, channels, *grid), elements=st.floats(0, 1e3)))
    norm = np.linalg.norm(raw, axis=1, keepdims=True)
    embedding = np.where(norm > 0, raw / np.where(norm > 0, norm, 1), 0.0)  # unit norm, or 0 where all zero
    target = draw(arrays(np.int64, (batch, *grid), elements=st.sampled_from([0, 1, 2, IGNORE])))
    return torch.tensor(embedding, requires_grad=True), torch.from_numpy(target)


@SETTINGS
@given(case=embedding_and_target(), data=st.data())
def test_affinity_bce_is_finite_bounded_and_chunk_free(case, data):
    embedding, target = case
    t_affinity = row_stochastic(data.draw, 2) if data.draw(st.booleans()) else None
    exact = affinity_bce(embedding, target, t_affinity, IGNORE)
    assert MIN_NLL <= float(exact) <= MAX_NLL
    exact.backward()
    assert torch.isfinite(embedding.grad).all()
    rows = data.draw(st.integers(1, int(np.prod(target.shape[1:]))))
    chunked = affinity_bce(embedding, target, t_affinity, IGNORE, chunk_size=rows)
    torch.testing.assert_close(chunked, exact, rtol=1e-9, atol=1e-12)  # float64: the chunks only regroup a sum
    sampled = affinity_bce(embedding, target, t_affinity, IGNORE, num_pairs=data.draw(st.integers(1, 64)))
    assert MIN_NLL <= float(sampled) <= MAX_NLL


@SETTINGS
@given(case=embedding_and_target(), extra=st.integers(1, 3), axis=st.integers(0, 2))
def test_affinity_bce_rejects_mismatched_grids(case, extra, axis):
    embedding, target = case
    shape = list(target.shape)
    shape[min(axis, len(shape) - 1)] += extra
    with pytest.raises(ValueError) as error:
        affinity_bce(embedding, torch.zeros(shape, dtype=torch.int64), None, IGNORE)
    assert_bundle_error(error.value)


@SETTINGS
@given(
    case=logits_and_target(),
    correction=st.booleans(),
    dar=st.booleans(),
    weights=st.tuples(st.floats(0, 2), st.floats(0, 1e-2), st.floats(0, 0.1)),
    pairs=st.sampled_from([None, 16]),
    channel_target=st.booleans(),
)
def test_calc_loss_is_finite_with_finite_gradients(case, correction, dar, weights, pairs, channel_target):
    logits, target, num_classes = case
    logits = logits.detach().float().requires_grad_()
    spatial = logits.shape[2:]
    prior = torch.bincount(target[target != IGNORE], minlength=num_classes).double() + 1
    loss = CALCLoss(
        num_classes,
        class_prior=prior,
        lambda_affinity=weights[0],
        lambda_volume=weights[1],
        lambda_consistency=weights[2],
        ignore_index=IGNORE,
        correction=correction,
        affinity_pairs=pairs,
    )
    embedding = F.normalize(torch.rand(logits.shape[0], 3, *spatial), dim=1).requires_grad_()
    pred = {"logits": logits, "embedding": embedding}
    if dar:
        pred["rectified"] = logits * 0.5
    total = loss(pred, target[:, None] if channel_target else target)
    assert total.ndim == 0 and torch.isfinite(total)
    assert {"class", "total"} <= set(loss.last_terms) and all(torch.isfinite(v) for v in loss.last_terms.values())
    total.backward()
    grads = [logits.grad] + [p.grad for p in loss.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert correction or all(p.grad is None for p in loss.parameters())  # warm-up: the transitions are not used


@SETTINGS
@given(case=logits_and_target(), what=st.sampled_from(["not a dict", "no logits", "shape", "channels"]))
def test_calc_loss_rejects_bad_inputs(case, what):
    logits, target, num_classes = case
    loss = CALCLoss(num_classes, lambda_affinity=0.0, lambda_consistency=0.0, ignore_index=IGNORE)
    pred: object = {"logits": logits}
    if what == "not a dict":
        pred, error = logits, TypeError
    elif what == "no logits":
        pred, error = {"rectified": logits}, TypeError
    elif what == "shape":
        target, error = F.pad(target, (0, 1)), ValueError
    else:
        target, error = target[:, None].expand(-1, 2, *target.shape[1:]), ValueError
    with pytest.raises(error) as raised:
        loss(pred, target)
    assert_bundle_error(raised.value)
