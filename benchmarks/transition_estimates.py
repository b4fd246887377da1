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
"""How well each ``T_C`` estimate at the switch recovers a known transition, from one warm-up network.

Usage (a warm-up-only run of the bundle on ``make_noisy`` data, then the estimates from its final checkpoint)::

    python -m scripts.make_noisy --datalist data/datalist.json --mode asymmetric --rate 0.4 --seed 100 --out dev/pf
    python -m monai.bundle run training --config_file configs/train.json --max_epochs 30 --warmup_epochs 30 \\
        --datalist dev/pf/datalist.json --dataset_dir dev/pf --ckpt_dir dev/pf_run/models --output_dir dev/pf_run/train
    python -m benchmarks.transition_estimates --datalist dev/pf/datalist.json --checkpoint \\
        dev/pf_run/models/checkpoint_final.pt [--override image_size=[96,80] affinity_grid=16]

Prints, per estimate, the mean row L1 distance to the true transition (``make_noisy``'s expected one, or its
empirical confusion where none is set) and the estimate: the anchor estimate on raw and temperature-scaled
posteriors (the default's), and the confusion of the predictions with the given labels (``"confusion"``), hard and
soft. Each reads the same 4096 pixels per training image (the training loader's crops, seed 0), as the bundle's
``TransitionEstimateHandler`` does. Development only: ``docs/tuning.md`` says on which seeds it was run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser

from benchmarks.bundle_runs import BUNDLE_ROOT


def main() -> None:
    from scripts.transition import (
        anchor_transition,
        format_matrix,
        prediction_confusion,
        temperature_scaled,
        transition_error,
        transition_from_confusion,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datalist", required=True, help="the make_noisy datalist the network was trained on")
    parser.add_argument("--checkpoint", required=True, help="a training checkpoint (holds 'network')")
    parser.add_argument("--override", nargs="*", default=[], help="train.json overrides of that run, key=JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    datalist = Path(args.datalist).resolve()
    config = ConfigParser()
    config.read_config(str(BUNDLE_ROOT / "configs" / "train.json"))
    config.update({"bundle_root": str(BUNDLE_ROOT), "datalist": str(datalist), "dataset_dir": str(datalist.parent)})
    config.update({k: json.loads(v) for k, v in (item.split("=", 1) for item in args.override)})
    network = config.get_parsed_content("network")
    network.load_state_dict(torch.load(args.checkpoint, map_location="cpu", weights_only=False)["network"])
    network.eval()
    generator = torch.Generator().manual_seed(0)
    probs, labels = [], []
    with torch.no_grad():
        for batch in config.get_parsed_content("train#dataloader"):
            out = network(batch["image"])
            for image_probs, image_labels in zip(
                out.flatten(2).transpose(1, 2), batch["label"].flatten(1), strict=True
            ):
                keep = torch.randperm(image_probs.shape[0], generator=generator)[:4096]
                probs.append(image_probs[keep])
                labels.append(image_labels[keep].long())
    p, y = torch.cat(probs), torch.cat(labels)
    classes = p.shape[1]
    report = json.loads((datalist.parent / "noise_report.json").read_text())
    true = report["settings"].get("transition_expected")
    if true is None:
        confusion = np.asarray(report["overall"]["confusion"], dtype=np.float64)
        true = confusion / confusion.sum(axis=1, keepdims=True)
    true = torch.as_tensor(np.asarray(true), dtype=torch.float64)
    prior = torch.bincount(y, minlength=classes).float()
    scaled, tau = temperature_scaled(p, y)
    grid = p.T[None, :, :, None]  # (1, C, M, 1): the sampled pixels as one image
    estimates = {
        "anchor, raw posteriors": anchor_transition(p, prior),
        f"anchor, temperature {tau:.2f} (anchor_calibration)": anchor_transition(scaled, prior),
        "predictions vs given labels (confusion)": transition_from_confusion(
            prediction_confusion(grid, y[None, :, None], classes)
        ),
        "posteriors vs given labels (soft)": transition_from_confusion(p.double().T @ F.one_hot(y, classes).double()),
    }
    print(f"true T_C: {format_matrix(true)}")
    for name, estimate in estimates.items():
        print(f"{transition_error(estimate, true):.3f}  {name}: {format_matrix(estimate)}")


if __name__ == "__main__":
    main()
