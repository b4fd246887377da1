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
"""ONNX export: onnxruntime computes what the eval-mode network does, for any batch size; the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import UNet
from scripts.export_onnx import export_onnx, main, onnx_max_abs_diff
from scripts.network import JCASNet

ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-4  # float32 probabilities; measured differences are ~1e-6
SIZE = (64, 48)


def make_net() -> JCASNet:
    torch.manual_seed(0)
    backbone = UNet(2, 3, 8, channels=(8, 16), strides=(2,), num_res_units=1)
    return JCASNet(backbone, 8, num_classes=4, embedding_channels=6, affinity_grid=16)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[JCASNet, Path]:
    net = make_net()
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / "net.onnx", torch.rand(1, 3, *SIZE))
    return net, path


@pytest.mark.parametrize("batch", [1, 2])
def test_onnxruntime_matches_pytorch(exported, batch):
    net, path = exported
    assert net.training  # export_onnx restores the mode it found
    x = torch.rand(batch, 3, *SIZE)
    (out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = net.eval()(x).numpy()
    net.train()
    assert out.shape == (batch, 4, *SIZE)
    np.testing.assert_allclose(out, expected, atol=ATOL, rtol=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=ATOL)


def test_bundle_network_def_exports(tmp_path):
    """network_def of configs/train.json at its image size, as the command line exports it."""
    parser = ConfigParser()
    parser.read_config(str(ROOT / "configs" / "train.json"))
    net = parser.get_parsed_content("network_def")
    shape = (3, *parser.get_parsed_content("image_size"))
    path = export_onnx(net, tmp_path / "model.onnx", torch.rand(1, *shape))
    assert onnx_max_abs_diff(net, path, torch.rand(2, *shape)) < ATOL


def test_input_size_must_fit_the_affinity_grid(tmp_path):
    with pytest.raises(ValueError, match="multiple of affinity_grid"):
        export_onnx(make_net(), tmp_path / "net.onnx", torch.rand(1, 3, 64, 40))


def write_bundle(root: Path) -> None:
    """A tiny bundle: configs/train.json with a small network_def (no inference.json, so main falls back to it)."""
    config = {
        "imports": ["$import scripts"],
        "bundle_root": ".",
        "image_channels": 3,
        "image_size": list(SIZE),
        "network_def": {
            "_target_": "scripts.network.JCASNet",
            "backbone": {
                "_target_": "UNet",
                "spatial_dims": 2,
                "in_channels": "@image_channels",
                "out_channels": 8,
                "channels": [8, 16],
                "strides": [2],
                "num_res_units": 1,
            },
            "feature_channels": 8,
            "num_classes": 4,
            "embedding_channels": 6,
            "affinity_grid": 16,
        },
    }
    (root / "configs").mkdir()
    (root / "configs" / "train.json").write_text(json.dumps(config))


def test_cli_exports_a_checkpoint(tmp_path, capsys):
    write_bundle(tmp_path)
    torch.save(make_net().state_dict(), tmp_path / "model.pt")
    out = tmp_path / "models" / "model.onnx"
    diff = main(["--ckpt_file", str(tmp_path / "model.pt"), "--out", str(out), "--bundle_root", str(tmp_path)])
    assert out.is_file() and diff < ATOL
    assert "max abs difference" in capsys.readouterr().out


def test_cli_errors(tmp_path):
    write_bundle(tmp_path)
    args = ["--out", str(tmp_path / "model.onnx"), "--bundle_root", str(tmp_path)]
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        main(["--ckpt_file", str(tmp_path / "missing.pt"), *args])
    # a trainer's save_dict checkpoint is not a plain state_dict of the network
    torch.save({"network": make_net().state_dict()}, tmp_path / "save_dict.pt")
    with pytest.raises(ValueError, match="save_dict.pt: not a state_dict of network_def"):
        main(["--ckpt_file", str(tmp_path / "save_dict.pt"), *args])
