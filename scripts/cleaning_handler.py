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
"""The evaluator handler of ``configs/clean_labels.json``: scores every case, writes its corrected label in the
input's format and geometry, and at the end the ranking, the pictures of the most suspect cases and the report.

Output folder (``clean_dir``, ``<output_dir>/clean_labels`` by default)::

    labels/...            corrected labels, named as the given ones (their path under the datalist's folder)
    ranking.csv           one row per case, most suspect first
    pictures/NNN_name.png the top-k cases: image | given | corrected | changed
    report.html           the ranking as a page, thumbnails inlined, links to the pictures
    datalist.json         the datalist with the cleaned split pointing at the corrected labels (``label_given``: the
                          labels given)
    summary.json          the noise model used (source, T_C, T_A) and the settings
    probabilities/NNNNN.npy  (``save_probabilities``) each case's posteriors, C x H[WD] float16, as the label on disk

On several processes (``configs/multi_gpu_clean_labels.json``) each writes the labels of its own cases; the records
are gathered, each process draws the pictures of its cases in the top k, and process 0 writes the rest after a
barrier.
"""

from __future__ import annotations

import csv
import heapq
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.data import load_decathlon_datalist
from monai.utils import convert_to_numpy

from .cleaning_report import case_picture, figure_png, picture_slice, report_html, thumbnail
from .label_cleaning import case_scores
from .make_noisy import LabelFile, read_label, write_label
from .outputs import label_palette

__all__ = ["LabelCleaningHandler", "case_entries", "disk_orientation", "input_folders"]

logger = logging.getLogger(__name__)


def _relative(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` when it lies inside it, else as it is."""
    try:
        return str(Path(path).resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def case_entries(entries: Sequence[dict[str, Any]], datalist: str) -> list[dict[str, Any]]:
    """The datalist entries with ``case`` (the image path as the datalist gives it: relative to its folder when it
    lies there) and ``case_index`` (the position in the list) added, for the evaluator to carry to the handler."""
    folder = Path(datalist).parent
    out = []
    for index, entry in enumerate(entries):
        image = entry["image"]
        name = ";".join(_relative(p, folder) for p in image) if isinstance(image, list) else _relative(image, folder)
        out.append({**entry, "case": name, "case_index": index})
    return out


def input_folders(entries: Sequence[dict[str, Any]], datalist: str) -> dict[str, str]:
    """Config key-like names -> every folder the cleaning reads (the datalist's, each image's and label's), for
    :func:`scripts.config_check.check_outputs_outside_inputs`."""
    folders = {"datalist": str(datalist)}
    seen = {str(Path(datalist).resolve().parent)}
    for index, entry in enumerate(entries):
        for key in ("image", "label"):
            for path in entry[key] if isinstance(entry[key], list) else [entry[key]]:
                folder = str(Path(path).resolve().parent)
                if folder not in seen:
                    seen.add(folder)
                    folders[f"the folder of {key} {index} ('{path}')"] = folder
    return folders


def _squeeze(array: np.ndarray) -> np.ndarray:
    while array.ndim > 2 and array.shape[-1] == 1:  # as scripts.make_noisy.read_label: (H, W, 1) is 2D
        array = array[..., 0]
    return array


def disk_orientation(loaded: np.ndarray, disk: LabelFile) -> Callable[[np.ndarray], np.ndarray]:
    """The map from the array MONAI loaded (spatial H[WD]) to the one on disk (``read_label``'s ``array``).

    MONAI's PIL reader transposes a PNG (W, H); NIfTI and DICOM arrays are as stored. The map is found by comparing
    the two readings of the given label, trying the format's usual map first.

    Raises:
        ValueError: neither map gives the label on disk, naming the file.
    """
    loaded = _squeeze(loaded)
    maps = [lambda x: _squeeze(x), lambda x: _squeeze(x).T]
    if disk.kind == "png":
        maps.reverse()
    for candidate in maps:
        mapped = candidate(loaded)
        if mapped.shape == disk.array.shape and np.array_equal(mapped, disk.array):
            return candidate
    raise ValueError(
        f"label '{disk.path}': the label as loaded for the network {loaded.shape} does not match the file "
        f"{disk.array.shape} in either axis order; cannot write its correction in its geometry"
    )


def _as_palette(label: LabelFile) -> LabelFile:
    """A grey ("L") PNG label is written as a palette PNG (the same class indices, shown in colour)."""
    if label.kind == "png" and label.extra["mode"] == "L":
        palette = label_palette().flatten().tolist()
        return LabelFile(
            label.path, label.kind, label.array, label.shape, {**label.extra, "mode": "P", "palette": palette}
        )
    return label


def _stem(case: str) -> str:
    name = os.path.basename(case.split(";")[0])
    for suffix in (".nii.gz", ".nii", ".png", ".dcm", ".jpg"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "case"


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class LabelCleaningHandler:
    """Scores each case of an evaluator run over the training split and writes what ``clean_labels`` produces.

    Attach it to a ``SupervisedEvaluator`` whose decollated output holds, per case, ``pred`` (CH[WD] class
    probabilities, inverted to the image's original geometry), ``label`` (1H[WD], as loaded) and ``image``, and whose
    batch holds ``case`` and ``case_index`` (see :func:`case_entries`) and, for the pictures, ``original_image``
    (CH[WD], the image as loaded: ``CopyItemsd`` before the network's transforms; not ``image_*``, a name MONAI's
    ``Spacingd`` takes for a metadata dict). The maths is :func:`scripts.label_cleaning.case_scores`.

    Args:
        output_dir: ``clean_dir``, the folder of everything written (module docstring).
        class_names: the C class names, background first.
        transitions: ``(T_C, T_A, source)`` as :func:`scripts.label_cleaning.read_transitions` returns it.
        affinity_grid: the pair score's grid, one int or one per spatial dim.
        datalist: the datalist file (label names under its folder, and the written datalist).
        threshold: ``suspect_threshold``, τ.
        num_pairs: pairs drawn per case for the pair score.
        top_k: cases with a picture.
        ignore_index: label value never scored nor changed.
        save_probabilities: also save each case's posteriors (``probabilities/``).
        split: the datalist list the cases come from (its labels are replaced in the written datalist).
        opening_radius: ``suspect_opening_radius``, see :func:`scripts.label_cleaning.open_mask`.
        min_score: ``clean_min_score``: cases scored below it keep their given label.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        transitions: tuple[torch.Tensor, torch.Tensor, str],
        affinity_grid: int | Sequence[int],
        datalist: str,
        threshold: float = 0.1,
        num_pairs: int = 65536,
        top_k: int = 10,
        ignore_index: int | None = None,
        save_probabilities: bool = False,
        split: str = "training",
        opening_radius: int = 1,
        min_score: float = 0.0,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"suspect_threshold: expected a probability in (0, 1], got {threshold!r}")
        if top_k < 0:
            raise ValueError(f"clean_top_k: expected an integer >= 0, got {top_k}")
        if num_pairs < 1:
            raise ValueError(f"clean_pairs: expected an integer >= 1, got {num_pairs}")
        self.output_dir = Path(output_dir)
        self.class_names = [str(n) for n in class_names]
        self.t_class, self.t_affinity, self.source = transitions
        self.affinity_grid = affinity_grid
        self.datalist = Path(datalist)
        self.threshold = float(threshold)
        self.num_pairs = int(num_pairs)
        self.top_k = int(top_k)
        self.ignore_index = ignore_index
        self.save_probabilities = bool(save_probabilities)
        self.split = split
        if opening_radius < 0:
            raise ValueError(f"suspect_opening_radius: expected an integer >= 0, got {opening_radius!r}")
        self.opening_radius = int(opening_radius)
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"clean_min_score: expected a share in [0, 1], got {min_score!r}")
        self.min_score = float(min_score)
        self.records: list[dict[str, Any]] = []
        self._candidates: list[tuple[tuple[float, int], int, dict[str, Any]]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda _: (self.records.clear(), self._candidates.clear()))
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self)

    def _label_path(self, label: str, index: int, folder: str) -> Path:
        try:
            relative = Path(label).resolve().relative_to(self.datalist.parent.resolve())
        except ValueError:
            relative = Path("external") / f"{index:05d}_{Path(label).name}"
        return self.output_dir / folder / relative

    def clean_case(self, item: dict[str, Any]) -> dict[str, Any]:
        """Score one case, write its corrected label (and posteriors); return its ranking record."""
        probs = torch.as_tensor(item["pred"]).detach().float().cpu()
        loaded = torch.as_tensor(item["label"]).detach().cpu()[0]
        label_path = str(item["label"].meta["filename_or_obj"])
        index = int(item["case_index"])
        spatial = probs.ndim - 1
        grid = [self.affinity_grid] * spatial if isinstance(self.affinity_grid, int) else list(self.affinity_grid)
        corrected, scores = case_scores(
            probs,
            loaded.round().long(),
            self.t_class,
            self.t_affinity,
            grid,
            self.threshold,
            self.num_pairs,
            index,
            self.ignore_index,
            self.opening_radius,
            self.min_score,
        )
        given = read_label(Path(label_path))
        to_disk = disk_orientation(convert_to_numpy(loaded), given)
        corrected_disk = to_disk(corrected.numpy()).astype(given.array.dtype)
        destination = write_label(_as_palette(given), corrected_disk, self._label_path(label_path, index, "labels"))
        if self.save_probabilities:
            (self.output_dir / "probabilities").mkdir(parents=True, exist_ok=True)
            posteriors = np.stack([to_disk(p) for p in probs.numpy()]).astype(np.float16)
            np.save(self.output_dir / "probabilities" / f"{index:05d}.npy", posteriors)
        record = {"case": str(item["case"]), "index": index, "score": scores["score"]}
        record.update(pair_score=scores["pair_score"], pixel_share=scores["pixel_share"])
        for name, value in zip(self.class_names, scores["class_scores"], strict=True):
            record[f"score_{name}"] = value
        for name, value in zip(self.class_names, scores["changed"], strict=True):
            record[f"changed_{name}"] = value
        record.update(dice_given_corrected=scores["dice"], label=label_path, corrected_label=str(destination.resolve()))
        record["image"] = str(getattr(item["image"], "meta", {}).get("filename_or_obj", item["case"]))
        if self.top_k:
            shown = item.get("original_image", item["image"])  # the image as loaded, else the network's input
            image = np.stack([to_disk(c) for c in convert_to_numpy(shown, dtype=np.float32)])
            self._keep(record, image, given.array, corrected_disk)
        return record

    def _keep(self, record: dict[str, Any], image: np.ndarray, given: np.ndarray, corrected: np.ndarray) -> None:
        """Hold the panels of the ``top_k`` highest-scoring cases of this process (one slice of a volume)."""
        key = (record["score"], -record["index"])
        if len(self._candidates) >= self.top_k and key <= self._candidates[0][0]:
            return
        depth = picture_slice(given, corrected)
        if depth is not None:
            image, given, corrected = image[..., depth], given[..., depth], corrected[..., depth]
        panels = {"image": image, "given": given, "corrected": corrected, "slice": depth}
        entry = (key, record["index"], panels)
        if len(self._candidates) < self.top_k:
            heapq.heappush(self._candidates, entry)
        else:
            heapq.heapreplace(self._candidates, entry)

    def collect(self, engine: Engine) -> None:
        output, batch = engine.state.output, engine.state.batch  # both decollated: one dict per case
        outputs, batches = (output, batch) if isinstance(output, list) else ([output], [batch])
        for out, data in zip(outputs, batches, strict=True):
            extra = {key: data[key] for key in ("case", "case_index", "original_image") if key in data}
            self.records.append(self.clean_case({**out, **extra}))

    def __call__(self, engine: Engine) -> None:
        """Gather the records of every process, rank them, draw the top k, and (process 0) write the files."""
        rank, world = _world()
        records = self.records
        if world > 1:
            parts: list[Any] = [None] * world
            dist.all_gather_object(parts, records)
            records = [r for part in parts for r in part]
        ranking = sorted(records, key=lambda r: (-r["score"], r["index"]))
        for position, record in enumerate(ranking, start=1):
            record["rank"] = position
        top = {r["index"]: r for r in ranking[: self.top_k]}
        pictures = {i: f"pictures/{r['rank']:03d}_{_stem(r['case'])}.png" for i, r in top.items()}
        for _, index, panels in self._candidates:
            if index in top:
                self._draw(top[index], panels, self.output_dir / pictures[index])
        if world > 1:
            dist.barrier()
        if rank == 0:
            self._write(ranking, pictures)

    def _draw(self, record: dict[str, Any], panels: dict[str, Any], path: Path) -> None:
        where = "" if panels["slice"] is None else f", slice {panels['slice']} (most changed)"
        title = f"#{record['rank']} {record['case']}: score {record['score']:.3f}{where}"
        fig = case_picture(panels["image"], panels["given"], panels["corrected"], self.class_names, title)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(figure_png(fig))

    def _columns(self) -> list[str]:
        columns = ["rank", "case", "index", "score", "pair_score", "pixel_share"]
        columns += [f"score_{n}" for n in self.class_names] + [f"changed_{n}" for n in self.class_names]
        return columns + ["dice_given_corrected", "label", "corrected_label", "image"]

    def _write(self, ranking: list[dict[str, Any]], pictures: dict[int, str]) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        columns = self._columns()
        with open(self.output_dir / "ranking.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in ranking)
        thumbnails = {i: thumbnail((self.output_dir / p).read_bytes()) for i, p in pictures.items()}
        notes = [
            f"{len(ranking)} cases of {self.datalist}, most suspect first. score: the share of suspect pixels among "
            f"those whose given or corrected label is foreground; a pixel is suspect where the probability of its "
            f"given label under the network and the learned noise model, p T_C, is below {self.threshold:g} "
            f"(suspect regions thinner than {2 * self.opening_radius + 1} pixels dropped)"
            + (f"; a case scored below {self.min_score:g} keeps its given label. " if self.min_score > 0 else ". ")
            + "pair_score: the same for pixel pairs with T_A on the affinity grid. changed_*: pixels changed per "
            "class; dice_given_corrected: foreground Dice of the given against the corrected label.",
            f"Noise model: {self.source}. Pictures of the top {len(pictures)} cases: image | given | corrected | "
            "changed.",
        ]
        shown = [c for c in columns if c not in ("label", "corrected_label", "image")]
        page = report_html(ranking, shown, pictures, thumbnails, "Label cleaning: suspect masks", notes)
        (self.output_dir / "report.html").write_text(page, encoding="utf-8")
        self._write_datalist(ranking)
        summary = {
            "transitions_source": self.source,
            "T_C": self.t_class.tolist(),
            "T_A": self.t_affinity.tolist(),
            "suspect_threshold": self.threshold,
            "suspect_opening_radius": self.opening_radius,
            "clean_min_score": self.min_score,
            "pairs": self.num_pairs,
            "top_k": self.top_k,
            "num_cases": len(ranking),
            "datalist": str(self.datalist),
        }
        (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        logger.info(
            f"clean_labels: {len(ranking)} cases ranked in '{self.output_dir / 'ranking.csv'}', report "
            f"'{self.output_dir / 'report.html'}'"
        )

    def _write_datalist(self, ranking: list[dict[str, Any]]) -> None:
        """The datalist with the cleaned cases' labels replaced by the corrected ones (other lists resolved)."""
        content = json.loads(self.datalist.read_text()) if self.datalist.is_file() else {}
        out = {k: v for k, v in content.items() if not isinstance(v, list)}
        for key, value in content.items():
            if isinstance(value, list) and value:
                out[key] = load_decathlon_datalist(self.datalist, True, key, self.datalist.parent)
        cleaned = sorted(ranking, key=lambda r: r["index"])
        out[self.split] = [
            {"image": r["image"], "label": r["corrected_label"], "label_given": r["label"]} for r in cleaned
        ]
        (self.output_dir / "datalist.json").write_text(json.dumps(out, indent=2) + "\n")
