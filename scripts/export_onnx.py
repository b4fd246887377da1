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
"""ONNX export of the eval-mode network, checked against PyTorch with onnxruntime.

``python -m scripts.export_onnx --ckpt_file models/model.pt --out models/model.onnx`` (needs
``pip install -r requirements-onnx.txt``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from torch import nn

__all__ = ["DEFAULT_OPSET", "export_onnx", "onnx_max_abs_diff", "main"]

DEFAULT_OPSET = 17  # every op of JCASNet exists there; run by onnxruntime >= 1.14 and TensorRT >= 8.6


def export_onnx(network: nn.Module, path: str | Path, example_input: torch.Tensor, opset: int = DEFAULT_OPSET) -> Path:
    """Export ``network`` in ``eval()`` mode to ONNX, with a dynamic batch axis.

    Uses the legacy TorchScript-based exporter (``dynamo=False``): the dynamo exporter, torch's default, needs
    ``onnxscript``, one more dependency, while the legacy one traces this network exactly (max abs difference to
    PyTorch 8e-6 for models/model.pt). The trace fixes the spatial size: the ONNX model takes only
    ``example_input``'s H[WD], which for a :class:`scripts.network.JCASNet` must be a multiple of its
    ``affinity_grid`` (ONNX has no adaptive pooling). The network's train/eval mode is restored afterwards. The
    exporter's warning that ``instance_norm`` is exported with ``train=True`` is harmless: MONAI's instance norm
    keeps no running statistics.

    Shapes:
        - example_input: BIH[WD], input name ``image`` (B is dynamic in the ONNX model).
        - ONNX output: BCH[WD] class probabilities, output name ``pred``.

    Args:
        network: the network, e.g. ``network_def`` of configs/train.json.
        path: the ``.onnx`` file to write (parent folders are created).
        example_input: a BIH[WD] tensor on the network's device, traced once.
        opset: the ONNX opset version.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: if the spatial size is not a multiple of the network's ``affinity_grid``.
    """
    grid = getattr(network, "affinity_grid", None)
    size = tuple(example_input.shape[2:])
    if grid is not None and any(s % g for s, g in zip(size, grid, strict=False)):
        raise ValueError(f"ONNX export needs the input size {size} to be a multiple of affinity_grid {tuple(grid)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = network.training
    network.eval()
    try:
        torch.onnx.export(
            network,
            (example_input,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["image"],
            output_names=["pred"],
            dynamic_axes={"image": {0: "batch"}, "pred": {0: "batch"}},
        )
    finally:
        network.train(was_training)
    return path


def onnx_max_abs_diff(network: nn.Module, path: str | Path, x: torch.Tensor) -> float:
    """Max abs difference between onnxruntime's output for the BIH[WD] input ``x`` and the eval-mode network's."""
    import onnxruntime  # optional dependency: requirements-onnx.txt

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"image": x.detach().cpu().numpy()})
    with torch.no_grad():
        torch_out = network.eval()(x).cpu().numpy()
    if onnx_out.shape != torch_out.shape:
        raise ValueError(f"{path}: ONNX output shape {onnx_out.shape} differs from PyTorch's {torch_out.shape}")
    return float(np.abs(onnx_out - torch_out).max())


def _default_config(bundle_root: Path) -> Path:
    inference = bundle_root / "configs" / "inference.json"
    if inference.is_file() and "network_def" in ConfigParser.load_config_file(str(inference)):
        return inference
    return bundle_root / "configs" / "train.json"


def main(argv: Sequence[str] | None = None) -> float:
    """Command line: build ``network_def``, load the checkpoint, export, print and return the max abs difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_file", required=True, help="plain state_dict of network_def, e.g. models/model.pt")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--config_file", nargs="+", help="default: configs/inference.json, or train.json")
    parser.add_argument("--bundle_root", default=".")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    args = parser.parse_args(argv)

    bundle_root = Path(args.bundle_root)
    config_files = args.config_file or [str(_default_config(bundle_root))]
    ckpt = Path(args.ckpt_file)
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    config = ConfigParser()
    config.read_config(config_files if len(config_files) > 1 else config_files[0])
    config["bundle_root"] = str(bundle_root)
    for key in ("network_def", "image_channels", "image_size"):
        if key not in config:
            raise KeyError(f"{config_files}: no '{key}' key, needed to build and trace the network")
    network = config.get_parsed_content("network_def")
    state_dict = torch.load(ckpt, map_location="cpu", weights_only=True)
    try:
        network.load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"{ckpt}: not a state_dict of network_def from {config_files}: {err}") from err

    shape = (1, config.get_parsed_content("image_channels"), *config.get_parsed_content("image_size"))
    torch.manual_seed(0)
    path = export_onnx(network, args.out, torch.rand(shape), opset=args.opset)
    diff = onnx_max_abs_diff(network, path, torch.rand(2, *shape[1:]))  # batch 2: checks the dynamic axis
    print(f"wrote {path} (opset {args.opset}); max abs difference to PyTorch on a random batch of 2: {diff:.3g}")
    return diff


if __name__ == "__main__":
    main()
