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
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.data import load_decathlon_datalist
from PIL import Image

from scripts.noise import NOISE_MODES, SimulateLabelNoise, check_label_values
from scripts.noise_rates import noise_rates

__all__ = ["LabelFile", "main", "make_noisy", "read_label", "write_label"]

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


def read_label(path: Path) -> LabelFile:
    """Read a NIfTI, PNG or DICOM label; raise ``FileNotFoundError``/``ValueError`` naming ``path``."""
    if not path.exists():
        raise FileNotFoundError(f"label file {path} not found")
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        img = nib.load(path)
        return LabelFile(path, "nifti", *_squeeze(np.asanyarray(img.dataobj)), {"image": img})
    if name.endswith(".png"):
        with Image.open(path) as img:
            if img.mode not in PNG_MODES:
                raise ValueError(f"label {path}: expected a class-index PNG (mode {PNG_MODES}), got mode {img.mode}")
            extra = {"mode": img.mode, "palette": img.getpalette() if img.mode == "P" else None, "info": img.info}
            array = np.array(img)
            return LabelFile(path, "png", array, array.shape, extra)
    if path.is_dir() or name.endswith(".dcm"):
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
        dst = dst.with_name(dst.name + ".nii.gz")
        nib.save(nib.Nifti1Image(noisy.reshape(label.shape).astype(label.array.dtype), label.extra["affine"]), dst)
    return dst


def _case_seed(seed: int, split: str, index: int) -> int:
    """Seed of one case from the run seed, the split name and the case index."""
    return int(np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]).generate_state(1)[0])


def _noisy_path(out_dir: Path, base_dir: Path, split: str, index: int, label_path: Path) -> Path:
    """DIR/split/<path relative to the datalist folder>, or DIR/split/external/<index>_<name> outside it."""
    try:
        return out_dir / split / label_path.resolve().relative_to(base_dir.resolve())
    except ValueError:
        return out_dir / split / "external" / f"{index:05d}_{label_path.name}"


def make_noisy(
    datalist: str | Path,
    out_dir: str | Path,
    mode: str,
    num_classes: int = 4,
    rate: float = 0.5,
    radius: Sequence[int] = (2, 6),
    fraction: float = 1.0,
    class_map: Sequence[int] | None = None,
    ignore_index: int | None = None,
    seed: int = 0,
    keys: Sequence[str] = ("training",),
) -> dict[str, Any]:
    """Corrupt the labels of the ``keys`` splits; write them, a datalist and a noise report to ``out_dir``.

    Args:
        datalist: decathlon-style JSON; relative paths are resolved against its folder.
        out_dir: output folder (created).
        mode, num_classes, rate, radius, fraction, class_map, ignore_index: see :class:`SimulateLabelNoise`.
        seed: run seed; each case is seeded from (seed, split, index).
        keys: splits to corrupt; the other lists are copied with absolute paths.

    Returns:
        The report written to ``out_dir/noise_report.json``.

    Raises:
        FileNotFoundError: the datalist or a label is missing.
        ValueError: a split is absent or has an entry without "label"; a label has values outside 0..C-1
            (other than ``ignore_index``) or an unsupported format.
    """
    datalist, out_dir = Path(datalist), Path(out_dir)
    if not datalist.is_file():
        raise FileNotFoundError(f"datalist {datalist} not found")
    with open(datalist) as f:
        content = json.load(f)
    for key in keys:
        if not isinstance(content.get(key), list):
            lists = [k for k, v in content.items() if isinstance(v, list)]
            raise ValueError(f"datalist {datalist}: expected a '{key}' list, found lists {lists}")
    base_dir = datalist.parent
    noise = SimulateLabelNoise(mode, num_classes, rate, radius, fraction, class_map, ignore_index)
    out_list = dict(content)
    cases = []
    for split, entries in content.items():
        if not isinstance(entries, list):
            continue
        out_list[split] = resolved = load_decathlon_datalist(datalist, True, split, base_dir)
        if split not in keys:
            continue
        for index, entry in enumerate(resolved):
            if "label" not in entry:
                raise ValueError(f"datalist {datalist}: entry {index} of '{split}' has no 'label'")
            label = read_label(Path(entry["label"]))
            noise.set_random_state(_case_seed(seed, split, index))
            try:
                check_label_values(label.array, num_classes, ignore_index)
                noisy = noise(label.array[None])[0]
            except ValueError as err:
                raise ValueError(f"label {label.path}: {err}") from err
            dst = write_label(label, noisy, _noisy_path(out_dir, base_dir, split, index, label.path))
            entry["label_clean"], entry["label"] = entry["label"], str(dst.resolve())
            rates = noise_rates(noisy, label.array, num_classes, ignore_index)
            cases.append({"split": split, "index": index, "label": entry["label"], "label_clean": str(label.path)})
            cases[-1].update({"format": label.kind, "corrupted": bool(noise._do_transform), **rates})
    pixels = sum(c["num_pixels"] for c in cases)
    pairs = sum(c["num_pairs"] for c in cases)
    overall = {
        "num_cases": len(cases),
        "pixel": sum(c["pixels_changed"] for c in cases) / pixels if pixels else 0.0,
        "affinity": sum(c["pairs_changed"] for c in cases) / pairs if pairs else 0.0,
        "mean_pixel": float(np.mean([c["pixel"] for c in cases])) if cases else 0.0,
        "mean_affinity": float(np.mean([c["affinity"] for c in cases])) if cases else 0.0,
        "corrupted": sum(c["corrupted"] for c in cases),
    }
    settings = {"mode": mode, "num_classes": num_classes, "rate": rate, "radius": list(noise.radius)}
    settings.update({"fraction": fraction, "class_map": noise.class_map, "ignore_index": ignore_index})
    settings.update({"seed": seed, "keys": list(keys)})
    report = {"datalist": str(datalist.resolve()), "settings": settings, "cases": cases, "overall": overall}
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


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with the module docstring as written and every option's default."""


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.make_noisy", description=__doc__, formatter_class=_Formatter
    )
    parser.add_argument("--datalist", required=True, help="decathlon-style datalist JSON")
    parser.add_argument("--mode", required=True, choices=NOISE_MODES, help="noise model")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num_classes", type=int, default=4, help="classes incl. background (EndoVis 2018: 4)")
    parser.add_argument("--rate", type=float, default=0.5, help="flip probability, symmetric/asymmetric")
    parser.add_argument("--radius", type=int, nargs=2, default=(2, 6), metavar=("MIN", "MAX"), help="morph radii")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of labels corrupted")
    parser.add_argument("--class_map", type=int, nargs="+", default=None, help="asymmetric targets, one per class")
    parser.add_argument("--ignore_index", type=int, default=None, help="label value never changed")
    parser.add_argument("--seed", type=int, default=0, help="run seed")
    parser.add_argument("--keys", nargs="+", default=["training"], help="splits to corrupt (default: training)")
    args = parser.parse_args(argv)
    report = make_noisy(
        args.datalist,
        args.out,
        args.mode,
        args.num_classes,
        args.rate,
        args.radius,
        args.fraction,
        args.class_map,
        args.ignore_index,
        args.seed,
        args.keys,
    )
    dicoms = [c for c in report["cases"] if c["format"] == "dicom"]
    for case in dicoms:
        print(f"DICOM label {case['label_clean']} written as NIfTI {case['label']}")
    print(format_report(report))
    print(f"wrote {Path(args.out) / 'datalist.json'} and {Path(args.out) / 'noise_report.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
