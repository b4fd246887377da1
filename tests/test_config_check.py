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
"""Start-up config checks: one case per check naming its key, the configs' wiring, and the command line's exit."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monai.bundle import ConfigWorkflow
from PIL import Image
from scripts.config_check import (
    MAX_EXACT_AFFINITY_PAIRS,
    ConfigError,
    check_config,
    check_outputs_outside_inputs,
    checked_choice,
    config_problems,
    reported_error,
)
from scripts.data import LoadImageByFormatd, checked_labels

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TRAIN = json.loads((CONFIGS / "train.json").read_text())
CHECKED = (  # the train.json keys that check_config receives, with their shipped values
    "loss_type",
    "num_classes",
    "class_names",
    "spatial_dims",
    "image_size",
    "batch_size",
    "num_samples",
    "max_epochs",
    "warmup_epochs",
    "affinity_grid",
    "affinity_pairs",
    "lambda_affinity",
    "lambda_volume",
    "lambda_consistency",
    "lambda_dice",
    "learning_rate",
    "transition_lr",
    "weight_decay",
    "unet_strides",
    "transition_init",
    "correction_lr_scale",
)
SHIPPED = {key: TRAIN[key] for key in CHECKED}


def values(tmp_path: Path, **override: Any) -> dict[str, Any]:
    """The shipped train.json values, with outputs and inputs in separate folders of ``tmp_path``, overridden."""
    folders = {
        "outputs": {"output_dir": tmp_path / "eval", "ckpt_dir": tmp_path / "models"},
        "inputs": {"dataset_dir": tmp_path / "data"},
    }
    return {**SHIPPED, **folders, **override}


def test_shipped_values_pass(tmp_path):
    assert config_problems(**values(tmp_path)) == []
    check_config(**values(tmp_path))


def test_3d_overlay_values_pass(tmp_path):
    """The 3D overlays' values (the network's input is the 96^3 patch) pass; its 32^3 grid needs sampled pairs."""
    overlay = {
        **json.loads((CONFIGS / "common_3d.json").read_text()),
        **json.loads((CONFIGS / "train_3d.json").read_text()),
    }
    shipped_3d = values(tmp_path, **{key: overlay[key] for key in CHECKED if key in overlay and key != "image_size"})
    shipped_3d["image_size"] = overlay["patch_size"]
    assert overlay["image_size"] == "@patch_size" and config_problems(**shipped_3d) == []
    exact = config_problems(**{**shipped_3d, "affinity_pairs": None})
    assert len(exact) == 1 and exact[0].startswith("affinity_grid: expected at most")


def test_checked_choice():
    assert checked_choice("intensity", "mri", ("ct", "mri")) == "mri"
    with pytest.raises(ConfigError, match="^intensity: expected one of 'ct', 'mri', got 'CT'$"):
        checked_choice("intensity", "CT", ("ct", "mri"))


CASES = [  # overrides, the key the message must name, words of what was expected
    ({"loss_type": "mae"}, "loss_type", "jcas, ce, dice_ce, gce, tloss"),
    ({"num_classes": 1, "class_names": ["background"]}, "num_classes", "integer >= 2"),
    ({"num_classes": 2.5}, "num_classes", "integer >= 2"),
    ({"num_classes": True}, "num_classes", "integer >= 2"),
    ({"class_names": ["background", "shaft"]}, "class_names", "expected num_classes = 4 names"),
    ({"class_names": "background"}, "class_names", "list of names"),
    ({"spatial_dims": 4}, "spatial_dims", "2 or 3"),
    ({"image_size": [160, 128, 64]}, "image_size", "2 integers"),
    ({"batch_size": 0}, "batch_size", "integer >= 1"),
    ({"max_epochs": 0}, "max_epochs", "integer >= 1"),
    ({"warmup_epochs": -1}, "warmup_epochs", "integer >= 0"),
    ({"warmup_epochs": 50, "max_epochs": 2}, "warmup_epochs", "at most max_epochs = 2"),
    ({"affinity_grid": 512, "image_size": [64, 64], "affinity_pairs": 4096}, "affinity_grid", "image_size [64, 64]"),
    ({"affinity_grid": [32, 160], "affinity_pairs": 4096}, "affinity_grid", "larger in dimension 1"),
    ({"affinity_grid": 200, "image_size": [256, 256]}, "affinity_grid", "at most 1.07e+09 pixel pairs"),
    ({"affinity_grid": [8, 8, 8]}, "affinity_grid", "positive integer or 2 of them"),
    ({"affinity_grid": 0}, "affinity_grid", "positive integer"),
    ({"affinity_pairs": 0}, "affinity_pairs", "positive integer"),
    ({"lambda_affinity": -1.0}, "lambda_affinity", ">= 0"),
    ({"lambda_volume": -1e-4}, "lambda_volume", ">= 0"),
    ({"lambda_consistency": float("nan")}, "lambda_consistency", ">= 0"),
    ({"lambda_dice": -1.0}, "lambda_dice", ">= 0"),
    ({"learning_rate": -0.025}, "learning_rate", "> 0"),
    ({"learning_rate": 0}, "learning_rate", "> 0"),
    ({"correction_lr_scale": 0}, "correction_lr_scale", "> 0"),
    ({"transition_lr": -0.01}, "transition_lr", ">= 0"),
    ({"weight_decay": "a lot"}, "weight_decay", ">= 0"),
    # the probe's [7, 7]: MONAI's UNet failed in its instance norm after a 529-line traceback, having created folders
    ({"image_size": [7, 7], "affinity_grid": 4}, "image_size", "multiple of [16, 16] in each dimension (the UNet's"),
    ({"image_size": [40, 40], "affinity_grid": 8}, "image_size", "not a multiple in dimension 0, 1 (e.g. [32, 32])"),
    ({"image_size": [16, 16], "affinity_grid": 4}, "image_size", "deepest features [1, 1]"),
    ({"image_size": [4, 1], "unet_strides": [[2, 1], [2, 1]], "affinity_grid": None}, "image_size", "features [1, 1]"),
    ({"unet_strides": [2, 0]}, "unet_strides", "list of positive integers (or of 2 per level), got [2, 0]"),
    ({"unet_strides": 2}, "unet_strides", "list of positive integers"),
    ({"affinity_grid": 1}, "affinity_grid", "at least 2 cells in each dimension"),
    ({"affinity_grid": [1, 8]}, "affinity_grid", "got [1, 8]"),
    ({"transition_init": [[0.9, 0.1], [0.2, 0.8]]}, "transition_init", "a number or a 4 x 4 matrix"),
    ({"transition_init": [[0.5] * 4] * 4}, "transition_init", "row-stochastic 4 x 4 matrix (entries >= 0, each row"),
    ({"transition_init": [[1.5, -0.5, 0, 0]] + [[0, 1, 0, 0]] * 3}, "transition_init", "row-stochastic"),
    ({"transition_init": float("nan")}, "transition_init", "finite number"),
]


@pytest.mark.parametrize("override, key, expected", CASES)
def test_each_check_names_its_key(tmp_path, override, key, expected):
    with pytest.raises(ConfigError) as error:
        check_config(**values(tmp_path, **override))
    message = str(error.value)
    assert message.startswith(f"{key}: expected") and expected in message, message


@pytest.mark.parametrize(
    "override",
    [
        {"warmup_epochs": 40, "max_epochs": 40},  # equal: the explicit way to train without correction
        {"warmup_epochs": 0},  # correct from the start
        *({"loss_type": name} for name in ("ce", "dice_ce", "gce", "tloss")),
        {"affinity_grid": 200, "image_size": [256, 256], "affinity_pairs": 65536},  # sampled: no pair budget
        {"affinity_grid": 200, "image_size": [256, 256], "lambda_affinity": 0.0},  # no affinity loss
        {"image_size": [-1, 128]},  # a size <= 0 keeps the image's: not compared
        {"class_names": None, "transition_lr": 0.0},
        {"spatial_dims": 3, "image_size": 32, "affinity_grid": [4, 4, 2]},
        {"image_size": [16, 32], "affinity_grid": 2},  # the deepest features 1 x 2: two elements suffice
        {"image_size": [8, 32], "unet_strides": [[1, 2], [2, 2], [2, 2]], "affinity_grid": [2, 4]},  # per dim
        {"transition_init": [[0.7, 0.1, 0.1, 0.1]] * 4},
    ],
)
def test_accepted_values(tmp_path, override):
    assert config_problems(**values(tmp_path, **override)) == []


def test_budget_is_an_argument(tmp_path):
    grid = int((MAX_EXACT_AFFINITY_PAIRS / 2) ** 0.25)  # batch 2 at the budget's edge
    assert config_problems(**values(tmp_path, affinity_grid=grid, image_size=[160, 160])) == []
    bigger = values(tmp_path, affinity_grid=grid + 1, image_size=[160, 160])
    assert config_problems(**bigger)[0].startswith("affinity_grid: expected at most 1.07e+09 pixel pairs a step")
    assert config_problems(**bigger, max_exact_affinity_pairs=2**40) == []


def test_patches_per_image_count_in_the_budget(tmp_path):
    grid = int((MAX_EXACT_AFFINITY_PAIRS / 2) ** 0.25)  # batch 2 of one patch each: at the budget's edge
    edge = values(tmp_path, affinity_grid=grid, image_size=[160, 160])
    assert config_problems(**edge) == []
    problems = config_problems(**edge | {"num_samples": 4})  # 8 inputs a step: 4 times the pairs
    assert len(problems) == 1 and "(batch_size * num_samples) * N^2 = 8 * " in problems[0]
    assert config_problems(**edge | {"num_samples": 4, "batch_size": 1}) != []  # 4 inputs: still twice the budget
    assert config_problems(**values(tmp_path, num_samples=0)) == [
        "num_samples: expected an integer >= 1 (patches per image), got 0"
    ]


def test_every_problem_is_listed(tmp_path):
    with pytest.raises(ConfigError) as error:
        check_config(**values(tmp_path, num_classes=1, learning_rate=-1, warmup_epochs=50, max_epochs=2))
    lines = str(error.value).splitlines()
    assert lines[0] == "4 problems in the config:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "num_classes",
        "class_names",
        "warmup_epochs",
        "learning_rate",
    ]


def test_no_correction_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="scripts.config_check"):
        check_config(**values(tmp_path, warmup_epochs=40, max_epochs=40))
    assert "training without noise correction" in caplog.text


@pytest.mark.parametrize(
    "output, data, named",
    [
        ("data", "data", "dataset_dir"),  # the dataset folder itself
        ("data/labels/eval", "data", "dataset_dir"),  # among the labels
        ("data/../data/eval", "data", "dataset_dir"),  # spelled differently
    ],
)
def test_output_inside_dataset_dir(tmp_path, output, data, named):
    with pytest.raises(ConfigError, match=f"^output_dir: expected a folder outside the input data.* inside {named}"):
        check_config(**values(tmp_path, outputs={"output_dir": tmp_path / output}, inputs={named: tmp_path / data}))


def test_output_inside_datalist_folder(tmp_path):
    datalist = tmp_path / "mydata" / "datalist.json"
    datalist.parent.mkdir()
    datalist.write_text("{}")
    outputs = {"output_dir": tmp_path / "eval", "ckpt_dir": tmp_path / "mydata" / "models"}
    with pytest.raises(ConfigError, match=r"^ckpt_dir: .* inside the folder of datalist '.*datalist.json'"):
        check_outputs_outside_inputs(outputs, {"datalist": datalist})
    check_outputs_outside_inputs({"output_dir": tmp_path / "mydata_eval"}, {"datalist": datalist})  # a sibling
    check_outputs_outside_inputs({"output_dir": tmp_path}, {"datalist": datalist, "dataset_dir": None})  # a parent


def workflow(configs: list[str], workflow_type: str, **override: Any) -> ConfigWorkflow:
    files = [str(CONFIGS / name) for name in configs]
    return ConfigWorkflow(
        config_file=files if len(files) > 1 else files[0],
        meta_file=str(CONFIGS / "metadata.json"),
        workflow_type=workflow_type,
        bundle_root=str(ROOT),
        **override,
    )


@pytest.mark.parametrize(
    "configs, workflow_type, override, key",
    [
        (["train.json"], "train", {"num_classes": 1}, "num_classes"),
        (["train.json"], "train", {"warmup_epochs": 50, "max_epochs": 2}, "warmup_epochs"),
        (["train.json"], "train", {"ckpt_dir": "{data}/models"}, "ckpt_dir"),
        (["train.json", "evaluate.json"], "eval", {"output_dir": "{data}/eval"}, "output_dir"),
        (["inference.json"], "infer", {"output_dir": "{data}"}, "output_dir"),
        (["inference.json"], "infer", {"prediction_dir": "{data}/images/seg"}, "prediction_dir"),
        (["train.json"], "train", {"image_size": [7, 7], "affinity_grid": 4}, "image_size"),
        (["train.json"], "train", {"transition_init": [[1.0, 0.0], [0.0, 1.0]]}, "transition_init"),
        (["train.json", "evaluate.json"], "eval", {"affinity_grid": 1}, "affinity_grid"),
        (["inference.json"], "infer", {"image_size": [7, 7], "affinity_grid": 4}, "image_size"),
    ],
)
def test_configs_check_at_initialize(tmp_path, monkeypatch, configs, workflow_type, override, key):
    """The configs' ``initialize`` lists run the checks first: nothing is read or written, not even the demo data."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # initialize installs the bundle's hook: restore it
    data = tmp_path / "data"
    paths = {"dataset_dir": str(data), "output_dir": str(tmp_path / "eval"), "ckpt_dir": str(tmp_path / "models")}
    override = {k: v.format(data=data) if isinstance(v, str) else v for k, v in override.items()}
    wf = workflow(configs, workflow_type, **{**paths, **override})
    with pytest.raises(RuntimeError) as error:
        wf.initialize()
    reported = reported_error(error.value)
    assert isinstance(reported, ConfigError), reported
    assert any(line.strip().startswith(f"{key}: expected") for line in str(reported).splitlines()), str(reported)
    assert list(tmp_path.iterdir()) == []  # no demo data, no output folder


def write_label(path: Path, value: int) -> str:
    label = np.zeros((8, 6), np.uint8)
    label[2:4, 1:3] = value
    Image.fromarray(label).save(path)
    return str(path)


def test_class_prior_names_the_file(tmp_path):
    entries = [{"label": write_label(tmp_path / f"label_{v}.png", v)} for v in (1, 7, 2)]
    loader = LoadImageByFormatd(keys="label")
    labels = checked_labels(entries, loader, num_classes=4, ignore_index=255)
    assert next(labels).shape == (6, 8)
    with pytest.raises(ValueError, match=r"^label '.*label_7\.png': label values must be in 0\.\.3 or 255"):
        next(labels)


def test_train_config_class_prior_names_the_file(tmp_path, monkeypatch):
    """train.json's ``class_prior`` reads the labels through :func:`scripts.data.checked_labels`."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    (tmp_path / "images").mkdir()
    entries = []
    for i, value in enumerate((1, 9)):
        Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(tmp_path / "images" / f"{i}.png")
        entries.append({"image": f"images/{i}.png", "label": write_label(tmp_path / f"label_{i}.png", value)})
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": entries, "validation": entries}))
    wf = workflow(["train.json"], "train", datalist=str(datalist), dataset_dir=str(tmp_path))
    with pytest.raises(RuntimeError) as error:
        wf.parser.get_parsed_content("class_prior")
    assert "label_1.png': label values must be in 0..3 or 255 (num_classes=4), got [9]" in str(
        reported_error(error.value)
    )


def raise_chained(error: BaseException) -> BaseException:
    try:
        try:
            raise error
        except Exception as e:
            raise RuntimeError("Failed to instantiate component 'CacheDataset'") from e
    except RuntimeError as outer:
        return outer


def test_reported_error_prefers_the_bundles():
    config = raise_chained(ConfigError("num_classes: expected an integer >= 2, got 1"))
    assert isinstance(reported_error(config), ConfigError)
    try:
        LoadImageByFormatd(keys="image")({"image": "/no/such/file.png"})
    except FileNotFoundError as e:
        ours = raise_chained(e)
    assert isinstance(reported_error(ours), FileNotFoundError)  # raised in scripts/data.py
    outer = RuntimeError("no cause")
    assert reported_error(outer) is outer


EXIT_SCRIPT = """
import importlib.util
spec = importlib.util.spec_from_file_location("config_check", "scripts/config_check.py")  # without torch and MONAI
config_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(config_check)
ConfigError, install_exit_on_error = config_check.ConfigError, config_check.install_exit_on_error
install_exit_on_error()
install_exit_on_error()
try:
    raise {error}
except Exception as e:
    raise RuntimeError("Failed to evaluate ConfigExpression") from e
"""


@pytest.mark.parametrize(
    "error, last, traceback",
    [
        ("ConfigError('num_classes: expected an integer >= 2, got 1')", "ConfigError: num_classes: expected", False),
        ("ValueError('from a library')", "ValueError: from a library", True),  # the innermost, again last
    ],
)
def test_uncaught_error_exits_1_with_reason_last(error, last, traceback):
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT.format(error=error)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(last), done.stderr
    assert ("Traceback" in done.stderr) == traceback


@pytest.mark.slow
def test_bad_key_on_the_command_line_exits_1_with_the_reason_last(tmp_path):
    """``python -m monai.bundle run`` with warmup_epochs > max_epochs: exit 1, the key last, nothing written."""
    override = {
        "dataset_dir": str(tmp_path / "data"),
        "output_dir": str(tmp_path / "eval"),
        "ckpt_dir": str(tmp_path / "models"),
        "warmup_epochs": "50",
        "max_epochs": "2",
    }
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", str(CONFIGS / "train.json")]
    cmd += ["--bundle_root", str(ROOT), *[arg for key, value in override.items() for arg in (f"--{key}", value)]]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ConfigError: warmup_epochs: expected at most max_epochs = 2"), done.stderr[-2000:]
    assert "got 50" in last and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no demo data, no output or checkpoint folder
