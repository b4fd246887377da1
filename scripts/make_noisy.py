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
"""Write a noisy copy of a decathlon-style dataset's labels, a datalist pointing to them and a noise report.

Example::

    python -m scripts.make_noisy --datalist data/datalist.json --mode ellipse --out data/noisy_ellipse

Labels keep their format and geometry: NIfTI (nibabel: affine, header, on-disk dtype), PNG (PIL: size,
orientation, mode and palette). A DICOM label (a ``.dcm`` file or a series folder, read with ITK) is written as
NIfTI with its RAS affine. Each case gets its own seed from (``--seed``, split, index), so a case's noise does not
depend on which splits are processed.

Class-conditional noise with per-class rates or an explicit transition (rows clean, columns noisy), e.g. wrist (2)
labelled shaft (1) in 60 % of its pixels::

    python -m scripts.make_noisy --datalist data/datalist.json --out data/noisy_wrist --mode asymmetric \\
        --class_map 0 1 1 3 --rate 0 0 0.6 0
    python -m scripts.make_noisy --datalist data/datalist.json --out data/noisy_wrist --mode transition \\
        --transition "[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0.6, 0.4, 0], [0, 0, 0, 1]]"

Structures left out (each connected part erased with probability 0.3), and labels predicted by a weak model (a small
network trained on 3 of the clean cases for a fixed budget, :mod:`scripts.model_labels`)::

    python -m scripts.make_noisy --datalist data/datalist.json --out data/noisy_omission --mode omission
    python -m scripts.make_noisy --datalist data/datalist.json --out data/noisy_model --mode model --cases 3

The report (noise_report.json) holds the pixel and affinity noise rates, the per-class Dice of the noisy against the
clean labels and the empirical class transition of the corrupted splits (``overall["transition"]``, from the pooled
counts ``overall["confusion"]``), next to the expected one of a mode that has one (``settings["transition_expected"]``)
and, for mode model, the labels the labeller learned from (``settings["model"]["trained_on"]``).

No input is ever modified: the output folder must not be, contain or lie inside the datalist's folder or the folder
of any image or label it references, and no output file may resolve (through symlinks) to an input. A non-empty
output folder is refused unless ``--overwrite`` is given. All of this is checked before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from os.path import exists, isabs
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.data import load_decathlon_datalist
from PIL import Image
from scripts.model_labels import WeakModelSettings, model_labels, read_image
from scripts.noise import (
    EXPECTED_TRANSITION_MODES,
    NOISE_MODES,
    SimulateLabelNoise,
    check_label_values,
    noise_transition_matrix,
)
from scripts.noise_rates import class_dice, empirical_transition, noise_rates
from scripts.transition import format_matrix

__all__ = ["MODES", "LabelFile", "check_output_folder", "main", "make_noisy", "read_label", "write_label"]

MODES = (*NOISE_MODES, "model")  # the transform's modes, and labels predicted by a weak model

NIFTI_SUFFIXES = (".nii", ".nii.gz")
PNG_MODES = ("1", "L", "P", "I", "I;16")


@dataclass
class LabelFile:
    """A label as read from disk: the H[WD] class map and what is needed to write it back the same way."""

    path: Path
    kind: str  # "nifti", "png" or "dicom"
    array: np.ndarray
    shape: tuple[int, ...]  # on disk; ``array`` drops trailing singleton axes beyond the second
    extra: dict[str, Any] = field(default_factory=dict)


def _squeeze(array: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Drop trailing singleton axes beyond the second ((H, W, 1) is a 2D label); also return the original shape."""
    shape = array.shape
    while array.ndim > 2 and array.shape[-1] == 1:
        array = array[..., 0]
    return array, shape


def _label_kind(path: Path) -> str | None:
    """The label format from the name of ``path``: nifti, png or dicom (a ``.dcm`` file or a folder), else None."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(".png"):
        return "png"
    return "dicom" if path.is_dir() or name.endswith(".dcm") else None


def read_label(path: Path) -> LabelFile:
    """Read a NIfTI, PNG or DICOM label; raise ``FileNotFoundError``/``ValueError`` naming ``path``."""
    if not path.exists():
        raise FileNotFoundError(f"label file {path} not found")
    kind = _label_kind(path)
    if kind == "nifti":
        img = nib.load(path)
        return LabelFile(path, "nifti", *_squeeze(np.asanyarray(img.dataobj)), {"image": img})
    if kind == "png":
        with Image.open(path) as img:
            if img.mode not in PNG_MODES:
                raise ValueError(f"label {path}: expected a class-index PNG (mode {PNG_MODES}), got mode {img.mode}")
            extra = {"mode": img.mode, "palette": img.getpalette() if img.mode == "P" else None, "info": img.info}
            array = np.array(img)
            return LabelFile(path, "png", array, array.shape, extra)
    if kind == "dicom":
        from monai.transforms import LoadImage  # ITK reader only needed for DICOM

        img = LoadImage(reader="ITKReader", image_only=True, dtype=None)(str(path))
        return LabelFile(path, "dicom", *_squeeze(img.numpy()), {"affine": img.affine.numpy()})
    raise ValueError(f"label {path}: unsupported format, expected .nii, .nii.gz, .png, .dcm or a DICOM folder")


def write_label(label: LabelFile, noisy: np.ndarray, dst: Path) -> Path:
    """Write ``noisy`` (H[WD], same shape as ``label.array``) like ``label`` to ``dst``; return the path written.

    DICOM labels are written as NIfTI: ``dst`` gets the suffix ``.nii.gz``.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    if label.kind == "nifti":
        src = label.extra["image"]
        out = type(src)(noisy.reshape(label.shape).astype(src.get_data_dtype()), src.affine, src.header)
        out.header.set_slope_inter(1.0, 0.0)
        nib.save(out, dst)
    elif label.kind == "png":
        mode, palette = label.extra["mode"], label.extra["palette"]
        dtypes = {"1": bool, "L": np.uint8, "P": np.uint8, "I": np.int32, "I;16": np.uint16}
        img = Image.fromarray(noisy.astype(dtypes[mode]))
        if palette is not None:
            img.putpalette(palette)
        transparency = label.extra["info"].get("transparency")
        img.save(dst, **({} if transparency is None else {"transparency": transparency}))
    else:
        dst = _nifti_name(dst)
        nib.save(nib.Nifti1Image(noisy.reshape(label.shape).astype(label.array.dtype), label.extra["affine"]), dst)
    return dst


def _nifti_name(dst: Path) -> Path:
    """Where a DICOM label planned at ``dst`` is written: ``dst`` with the suffix ``.nii.gz`` added."""
    return dst.with_name(dst.name + ".nii.gz")


def _case_seed(seed: int, split: str, index: int) -> int:
    """Seed of one case from the run seed, the split name and the case index."""
    return int(np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]).generate_state(1)[0])


def _noisy_path(out_dir: Path, base_dir: Path, split: str, index: int, label_path: Path) -> Path:
    """DIR/split/<path relative to the datalist folder>, or DIR/split/external/<index>_<name> outside it."""
    try:
        return out_dir / split / label_path.resolve().relative_to(base_dir.resolve())
    except ValueError:
        return out_dir / split / "external" / f"{index:05d}_{label_path.name}"


def _relation(path: Path, folder: Path) -> str | None:
    """How the resolved folder ``path`` meets the resolved ``folder``: "is", "contains", "lies inside" or None."""
    if path == folder:
        return "is"
    if path in folder.parents:
        return "contains"
    return "lies inside" if folder in path.parents else None


def _referenced_paths(entries: Sequence[dict[str, Any]]) -> list[Path]:
    """Every file a resolved datalist split references: its images and labels, and other values naming a file."""
    paths = []
    for entry in entries:
        for key, value in entry.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and (key in ("image", "label") or (isabs(item) and exists(item))):
                    paths.append(Path(item))
    return paths


def check_output_folder(
    out_dir: str | Path,
    datalist: str | Path,
    inputs: Sequence[str | Path],
    outputs: Sequence[str | Path] = (),
    overwrite: bool = False,
) -> None:
    """Refuse an output that could modify the input data; call before writing anything.

    All paths are compared resolved (symlinks followed). The input folders are the datalist's folder and the folder
    of every input file.

    Args:
        out_dir: output folder.
        datalist: the input datalist file.
        inputs: the files the datalist references (images, labels).
        outputs: the files that will be written (inside ``out_dir``, possibly through symlinks).
        overwrite: allow an existing non-empty ``out_dir``.

    Raises:
        ValueError: naming the paths, when ``out_dir`` is, contains or lies inside an input folder; when an output
            resolves to an input file or into an input folder; when ``out_dir`` is a file; when ``out_dir`` is not
            empty and ``overwrite`` is false.
    """
    out_dir, datalist = Path(out_dir), Path(datalist)
    out_resolved = out_dir.resolve()
    files = {Path(p).resolve() for p in [datalist, *inputs]}
    folders = sorted({f.parent for f in files})
    relations = [(relation, folder) for folder in folders if (relation := _relation(out_resolved, folder))]
    if relations:  # name the closest: the folder it is, else the deepest folder it lies inside, else one it contains
        order = {"is": 0, "lies inside": 1, "contains": 2}
        relation, folder = min(relations, key=lambda r: (order[r[0]], -len(r[1].parts) if r[0] == "lies inside" else 0))
        raise ValueError(
            f"output folder {out_dir} (resolved {out_resolved}) {relation} the input folder {folder} of datalist "
            f"{datalist}: refusing to write there, the input data must never be modified; choose an output "
            "folder outside the input data"
        )
    for output in outputs:
        resolved = Path(output).resolve()
        if resolved in files or any(folder in resolved.parents for folder in folders):
            what = "the input file" if resolved in files else "the input data of datalist"
            target = resolved if resolved in files else datalist
            raise ValueError(
                f"output {output} resolves to {resolved}, {what} {target}: refusing to write there, the input data "
                "must never be modified (a symlink in the output folder?)"
            )
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output folder {out_dir} exists and is not a folder")
    if out_dir.is_dir() and not overwrite:
        found = sorted(p.name for p in out_dir.iterdir())
        if found:
            raise ValueError(
                f"output folder {out_dir} is not empty ({len(found)} entries, e.g. {found[:3]}); pass --overwrite "
                "(overwrite=True) to write into it, or choose an empty or new folder"
            )


def _num_classes(num_classes: int | None, content: dict[str, Any], datalist: Path) -> int:
    """``num_classes`` as given, else the datalist's ``num_classes`` or the size of its ``labels`` table."""
    if num_classes is None:
        num_classes = content.get("num_classes", len(content.get("labels", {})) or None)
    if num_classes is None:
        raise ValueError(
            f"datalist {datalist} states no 'num_classes' (nor a 'labels' table): give num_classes "
            "(--num_classes), the number of classes including background"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"expected num_classes an integer >= 2, got {num_classes!r}")
    return num_classes


def _plan(
    datalist: Path, content: dict[str, Any], keys: Sequence[str], out_dir: Path
) -> tuple[dict[str, Any], list[Path], list[tuple[str, int, dict[str, Any], Path]], list[Path]]:
    """The output datalist (every list resolved), the input files, the labels to corrupt (split, index, entry, where
    the noisy copy goes) and every file that will be written; checks that each label exists and has a format."""
    for key in keys:
        if not isinstance(content.get(key), list):
            lists = [k for k, v in content.items() if isinstance(v, list)]
            raise ValueError(f"datalist {datalist}: expected a '{key}' list, found lists {lists}")
    base_dir = datalist.parent
    out_list = dict(content)
    inputs: list[Path] = []
    outputs = [out_dir / "datalist.json", out_dir / "noise_report.json"]
    planned = []
    for split, entries in content.items():
        if not isinstance(entries, list):
            continue
        out_list[split] = resolved = load_decathlon_datalist(datalist, True, split, base_dir)
        inputs += _referenced_paths(resolved)
        if split not in keys:
            continue
        for index, entry in enumerate(resolved):
            if "label" not in entry:
                raise ValueError(f"datalist {datalist}: entry {index} of '{split}' has no 'label'")
            path = Path(entry["label"])
            if not path.exists():
                raise FileNotFoundError(f"datalist {datalist}: label file {path} of '{split}' entry {index} not found")
            kind = _label_kind(path)
            if kind is None:
                raise ValueError(f"label {path}: unsupported format, expected .nii, .nii.gz, .png, .dcm or a folder")
            dst = _noisy_path(out_dir, base_dir, split, index, path)
            planned.append((split, index, entry, dst))
            outputs.append(_nifti_name(dst) if kind == "dicom" else dst)  # where write_label will write
    return out_list, inputs, planned, outputs


def _transform_noise(
    noise: SimulateLabelNoise, labels: Sequence[LabelFile], cases: Sequence[tuple[str, int]], seed: int
) -> tuple[list[np.ndarray], list[bool]]:
    """Each label through ``noise``, seeded per case from (seed, split, index); and whether it was corrupted."""
    noisy, corrupted = [], []
    for label, (split, index) in zip(labels, cases, strict=True):
        noise.set_random_state(_case_seed(seed, split, index))
        try:
            noisy.append(noise(label.array[None])[0])
        except ValueError as err:
            raise ValueError(f"label {label.path}: {err}") from err
        corrupted.append(noise.corrupts)
    return noisy, corrupted


def _model_noise(
    labels: Sequence[LabelFile],
    images: Sequence[str],
    cases: Sequence[tuple[str, int]],
    num_classes: int,
    settings: WeakModelSettings,
    fraction: float,
    seed: int,
) -> tuple[list[np.ndarray], list[bool], list[int]]:
    """Labels predicted by a weak model (:func:`scripts.model_labels.model_labels`), kept for a ``fraction`` of the
    cases (each drawn from its own seed); the indices of the cases the model learned from."""
    arrays = [read_image(image, label.array.shape) for image, label in zip(images, labels, strict=True)]
    predicted, trained_on = model_labels(arrays, [lab.array for lab in labels], num_classes, settings, seed)
    corrupted = [
        bool(np.random.RandomState(_case_seed(seed, split, index)).rand() < fraction) for split, index in cases
    ]
    noisy = [
        p.astype(lab.array.dtype) if c else lab.array for p, lab, c in zip(predicted, labels, corrupted, strict=True)
    ]
    return noisy, corrupted, trained_on


def _overall(cases: Sequence[dict[str, Any]], num_classes: int) -> dict[str, Any]:
    """Pixel and affinity rates pooled over the cases, their mean per case, the pooled confusion, its transition
    and its per-class Dice (noisy against clean)."""
    pixels = sum(c["num_pixels"] for c in cases)
    pairs = sum(c["num_pairs"] for c in cases)
    confusion = sum((np.asarray(c["confusion"], dtype=np.int64) for c in cases), np.zeros((num_classes,) * 2, int))
    return {
        "num_cases": len(cases),
        "pixel": sum(c["pixels_changed"] for c in cases) / pixels if pixels else 0.0,
        "affinity": sum(c["pairs_changed"] for c in cases) / pairs if pairs else 0.0,
        "mean_pixel": float(np.mean([c["pixel"] for c in cases])) if cases else 0.0,
        "mean_affinity": float(np.mean([c["affinity"] for c in cases])) if cases else 0.0,
        "corrupted": sum(c["corrupted"] for c in cases),
        "confusion": confusion.tolist(),
        "transition": empirical_transition(confusion).tolist(),
        "dice": class_dice(confusion),
    }


def make_noisy(
    datalist: str | Path,
    out_dir: str | Path,
    mode: str,
    num_classes: int | None = None,
    rate: float | Sequence[float] | None = None,
    radius: Sequence[int] = (2, 6),
    fraction: float = 1.0,
    class_map: Sequence[int] | None = None,
    ignore_index: int | None = None,
    seed: int = 0,
    keys: Sequence[str] = ("training",),
    transition: Sequence[Sequence[float]] | None = None,
    overwrite: bool = False,
    model: WeakModelSettings | None = None,
) -> dict[str, Any]:
    """Corrupt the labels of the ``keys`` splits; write them, a datalist and a noise report to ``out_dir``.

    Nothing is written before the arguments, the datalist, the existence and format of every label to corrupt and
    the output folder (:func:`check_output_folder`) are checked; no input file is ever modified.

    Args:
        datalist: decathlon-style JSON; relative paths are resolved against its folder.
        out_dir: output folder (created): outside the input data, and empty unless ``overwrite``.
        mode: one of :data:`MODES`: a :class:`scripts.noise.SimulateLabelNoise` mode, or ``"model"``, labels
            predicted by a weak model trained on a few of the cases (:mod:`scripts.model_labels`; the case labels of
            the ``keys`` splits must be clean).
        num_classes: C; None takes the datalist's ``num_classes`` (or the size of its ``labels`` table).
        rate, radius, fraction, class_map, ignore_index, transition: see :class:`SimulateLabelNoise` (``rate``: one
            rate or C per-class rates, None the mode's default; ``transition``: C x C matrix of mode "transition";
            ``fraction``: share of corrupted cases, in every mode).
        seed: run seed; each case is seeded from (seed, split, index), the weak model from ``seed``.
        keys: splits to corrupt; the other lists are copied with absolute paths.
        overwrite: write into an existing non-empty ``out_dir`` (files of the same name are replaced).
        model: the weak model's budget (mode "model"; None: :class:`scripts.model_labels.WeakModelSettings`).

    Returns:
        The report written to ``out_dir/noise_report.json``: ``datalist``, ``settings`` (the arguments, plus
        ``transition_expected``, the C x C expected transition of a mode that has one, None otherwise, and for mode
        "model" ``model``: its budget and ``trained_on``, the labels it learned from), ``cases`` (per case: paths,
        format, ``corrupted`` and :func:`noise_rates`, with its ``confusion`` and per-class ``dice``) and
        ``overall``: pooled pixel and affinity rates, ``confusion`` (C x C counts over all cases of the corrupted
        splits, rows clean, columns noisy), ``transition`` (its row-normalised form, identity row for a class
        absent from the clean labels) and ``dice`` (per class, noisy against clean, from the pooled counts).

    Raises:
        FileNotFoundError: the datalist or a label is missing.
        ValueError: a split is absent or has an entry without "label"; a label has values outside 0..C-1
            (other than ``ignore_index``) or an unsupported format; an invalid noise argument; an output folder
            that could modify the input data or is not empty (see :func:`check_output_folder`).
    """
    datalist, out_dir = Path(datalist), Path(out_dir)
    if not datalist.is_file():
        raise FileNotFoundError(f"datalist {datalist} not found")
    with open(datalist) as f:
        content = json.load(f)
    num_classes = _num_classes(num_classes, content, datalist)
    if mode not in MODES:
        raise ValueError(f"expected mode in {MODES}, got {mode!r}")
    # a SimulateLabelNoise checks the arguments of every mode (mode "model" uses its fraction and ignore_index only)
    noise = SimulateLabelNoise(
        "ellipse" if mode == "model" else mode, num_classes, rate, radius, fraction, class_map, ignore_index, transition
    )
    out_list, inputs, planned, outputs = _plan(datalist, content, keys, out_dir)
    check_output_folder(out_dir, datalist, inputs, outputs, overwrite)

    labels = [read_label(Path(entry["label"])) for _, _, entry, _ in planned]
    for label in labels:
        try:
            check_label_values(label.array, num_classes, ignore_index)
        except ValueError as err:
            raise ValueError(f"label {label.path}: {err}") from err
    ids = [(split, index) for split, index, _, _ in planned]
    settings: dict[str, Any] = {"mode": mode, "num_classes": num_classes, "rate": noise.rate}
    if mode == "model":
        model = model or WeakModelSettings()
        images = [entry["image"] for _, _, entry, _ in planned]
        noisy, corrupted, trained_on = _model_noise(labels, images, ids, num_classes, model, fraction, seed)
        settings["model"] = {**asdict(model), "trained_on": [str(labels[i].path) for i in trained_on]}
    else:
        noisy, corrupted = _transform_noise(noise, labels, ids, seed)
    cases = []
    for (split, index, entry, dst), label, array, flag in zip(planned, labels, noisy, corrupted, strict=True):
        dst = write_label(label, array, dst)
        entry["label_clean"], entry["label"] = entry["label"], str(dst.resolve())
        cases.append({"split": split, "index": index, "label": entry["label"], "label_clean": str(label.path)})
        cases[-1].update({"format": label.kind, "corrupted": flag})
        cases[-1].update(noise_rates(array, label.array, num_classes, ignore_index))
    expected = None
    if mode in EXPECTED_TRANSITION_MODES:
        expected = noise_transition_matrix(mode, num_classes, noise.rate, noise.class_map, noise.transition, fraction)
    settings.update({"radius": list(noise.radius), "fraction": fraction, "class_map": noise.class_map})
    settings.update(
        {"ignore_index": ignore_index, "transition": None if noise.transition is None else noise.transition.tolist()}
    )
    settings.update({"transition_expected": None if expected is None else expected.tolist()})
    settings.update({"seed": seed, "keys": list(keys)})
    report = {"datalist": str(datalist.resolve()), "settings": settings, "cases": cases}
    report["overall"] = _overall(cases, num_classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "datalist.json", "w") as f:
        json.dump(out_list, f, indent=2)
    with open(out_dir / "noise_report.json", "w") as f:
        json.dump(report, f, indent=2)
    return report


def format_report(report: dict[str, Any]) -> str:
    """Table of pixel and affinity noise rates (%) per case and overall (pooled over pixels and pairs)."""
    rows = [
        (f"{c['split']}[{c['index']}] {Path(c['label_clean']).name}", c["pixel"], c["affinity"])
        for c in report["cases"]
    ]
    overall = report["overall"]
    rows.append((f"overall ({overall['num_cases']} cases)", overall["pixel"], overall["affinity"]))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'case':<{width}}  {'pixel %':>8}  {'affinity %':>10}"]
    lines += [f"{name:<{width}}  {100 * p:8.2f}  {100 * a:10.2f}" for name, p, a in rows]
    return "\n".join(lines)


def _json_matrix(text: str) -> list[list[float]]:
    """``--transition``: a JSON list of C rows of C numbers."""
    try:
        matrix = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(
            f"expected a JSON C x C matrix such as [[0.9, 0.1], [0.2, 0.8]], got {text!r}"
        ) from err
    if not isinstance(matrix, list) or not all(isinstance(row, list) for row in matrix):
        raise argparse.ArgumentTypeError(f"expected a JSON list of rows, got {text!r}")
    return matrix


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with the module docstring as written and every option's default."""


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.make_noisy", description=__doc__, formatter_class=_Formatter
    )
    parser.add_argument("--datalist", required=True, help="decathlon-style datalist JSON")
    parser.add_argument("--mode", required=True, choices=MODES, help="noise model")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--num_classes", type=int, default=None, help="classes incl. background (default: the datalist's num_classes)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=None,
        help="flip (symmetric/asymmetric) or erase (omission) probability, one or one per class; default 0.5, "
        "omission 0.3",
    )
    parser.add_argument("--radius", type=int, nargs=2, default=(2, 6), metavar=("MIN", "MAX"), help="morph radii")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of labels corrupted")
    parser.add_argument("--class_map", type=int, nargs="+", default=None, help="asymmetric targets, one per class")
    parser.add_argument(
        "--transition",
        type=_json_matrix,
        default=None,
        metavar="JSON",
        help="C x C matrix of mode transition, rows clean",
    )
    parser.add_argument("--ignore_index", type=int, default=None, help="label value never changed")
    parser.add_argument("--seed", type=int, default=0, help="run seed")
    parser.add_argument("--keys", nargs="+", default=["training"], help="splits to corrupt (default: training)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    weak = WeakModelSettings()
    parser.add_argument(
        "--cases", type=int, default=weak.cases, help="mode model: clean cases the labeller learns from"
    )
    parser.add_argument("--steps", type=int, default=weak.steps, help="mode model: the labeller's training steps")
    args = parser.parse_args(argv)
    rate = args.rate if args.rate is None or len(args.rate) > 1 else args.rate[0]
    try:
        report = make_noisy(
            args.datalist,
            args.out,
            args.mode,
            num_classes=args.num_classes,
            rate=rate,
            radius=args.radius,
            fraction=args.fraction,
            class_map=args.class_map,
            ignore_index=args.ignore_index,
            seed=args.seed,
            keys=args.keys,
            transition=args.transition,
            overwrite=args.overwrite,
            model=WeakModelSettings(cases=args.cases, steps=args.steps),
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    dicoms = [c for c in report["cases"] if c["format"] == "dicom"]
    for case in dicoms:
        print(f"DICOM label {case['label_clean']} written as NIfTI {case['label']}")
    print(format_report(report))
    print("empirical transition p(noisy | clean), rows clean:\n" + format_matrix(report["overall"]["transition"], True))
    if report["settings"]["transition_expected"] is not None:
        print("expected transition:\n" + format_matrix(report["settings"]["transition_expected"], True))
    print(
        "Dice of noisy against clean labels, per class: "
        + ", ".join("-" if d is None else f"{d:.3f}" for d in report["overall"]["dice"])
    )
    if "model" in report["settings"]:
        print("the weak model learned from " + ", ".join(report["settings"]["model"]["trained_on"]))
    print(f"wrote {Path(args.out) / 'datalist.json'} and {Path(args.out) / 'noise_report.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
