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
"""MONAI's bundle tools on this bundle: metadata schema, network input/output, TorchScript export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out
from monai.bundle.config_parser import ConfigParser

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def test_verify_metadata_offline():
    # the schema copy in the repository means nothing is downloaded
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(CONFIGS / "metadata_schema.json"))


def test_verify_net_in_out():
    verify_net_in_out(
        net_id="network_def", meta_file=str(CONFIGS / "metadata.json"), config_file=str(CONFIGS / "inference.json")
    )


def _network_def():
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    return parser.get_parsed_content("network_def")


@pytest.mark.slow
def test_model_zoo_checks_from_another_directory(tmp_path):
    """The model zoo's CI commands on configs/inference.json alone, run from outside the bundle with --bundle_root:
    a fresh Python process, so the bundle's scripts package is found through bundle_root, not the working directory."""
    common = ["--meta_file", str(CONFIGS / "metadata.json"), "--config_file", str(CONFIGS / "inference.json")]
    common += ["--bundle_root", str(ROOT)]
    commands = [
        ["verify_net_in_out", "network_def", *common],
        ["ckpt_export", "network_def", "--filepath", str(tmp_path / "model.ts"), *common],  # models/model.pt
    ]
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "monai.bundle", *command], cwd=tmp_path, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert (tmp_path / "model.ts").is_file()


def test_ckpt_export_matches_checkpoint(tmp_path):
    """A fresh export of models/model.pt (whatever training last wrote there) computes what the checkpoint does."""
    ts_path = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts_path),
        ckpt_file=str(ROOT / "models" / "model.pt"),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
    )
    network = _network_def()
    network.load_state_dict(torch.load(ROOT / "models" / "model.pt", map_location="cpu", weights_only=True))
    network.eval()
    x = torch.rand(1, 3, 160, 128)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(ts_path))(x), network(x))


def test_shipped_torchscript_matches_the_network_with_its_weights():
    """The committed models/model.ts is network_def with the weights it carries; it does not depend on
    models/model.pt, which a training run rewrites."""
    scripted = torch.jit.load(str(ROOT / "models" / "model.ts"))
    network = _network_def()
    network.load_state_dict(scripted.state_dict())
    network.eval()
    x = torch.rand(2, 3, 160, 128)
    with torch.no_grad():
        expected = network(x)
        torch.testing.assert_close(scripted(x), expected)
    assert expected.shape == (2, 4, 160, 128)
