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
"""The model zoo's unit test of the JCAS bundle: train, evaluate and infer briefly on the synthetic demo.

Run from the zoo's root, as its CI does: ``python ci/unit_tests/runner.py --b <bundle>``. It needs no weights:
training writes the checkpoint that evaluation and inference load. About a minute on a CPU. Written by the
bundle's ``tools/zoo_package.py`` from ``tools/zoo_unit_test_template.py``.
"""

from __future__ import annotations

import csv
import glob
import os
import shutil
import tempfile
import unittest

from monai.bundle import ConfigWorkflow
from utils import check_workflow

BUNDLE = "jcas_noisy_label_segmentation"
BUNDLE_ROOT = os.path.join("models", BUNDLE)
NUM_TEST = 4

# a small network on a small demo set (64x80 frames), so that an epoch takes about a second on a CPU
TINY = {
    "bundle_root": BUNDLE_ROOT,
    "datalist": f"$@scripts.demo_data.ensure_demo_dataset(@dataset_dir, 8, 4, {NUM_TEST}, (64, 80))",
    "image_size": [80, 64],
    "unet_channels": [8, 16, 32],
    "unet_strides": [2, 2],
    "feature_channels": 8,
    "embedding_channels": 8,
    "affinity_grid": 8,
    "num_workers": 0,
}

TEST_CASE_1 = {**TINY, "max_epochs": 2, "warmup_epochs": 1, "progress_bar": False}  # train, evaluate

TEST_CASE_2 = {**TINY, "save_overlay": True}  # inference with the trained checkpoint


def test_order(test_name1: str, test_name2: str) -> int:
    """Train and evaluate before inference (the zoo's runner sorts the tests with this)."""

    def get_order(name: str) -> int:
        if "train" in name:
            return 1
        if "eval" in name:
            return 2
        if "infer" in name:
            return 3
        return 4

    return get_order(test_name1) - get_order(test_name2)


def workflow(workflow_type: str, configs: list[str], override: dict) -> ConfigWorkflow:
    """A workflow of the bundle's ``configs`` (layered in order) with ``override``."""
    files = [os.path.join(BUNDLE_ROOT, "configs", name) for name in configs]
    return ConfigWorkflow(
        workflow_type=workflow_type,
        config_file=files if len(files) > 1 else files[0],
        logging_file=os.path.join(BUNDLE_ROOT, "configs", "logging.conf"),
        meta_file=os.path.join(BUNDLE_ROOT, "configs", "metadata.json"),
        **override,
    )


class TestJCASNoisyLabelSegmentation(unittest.TestCase):
    """One demo set and one checkpoint folder for the class: inference loads what training wrote."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.work_dir = tempfile.mkdtemp()
        cls.paths = {
            "dataset_dir": os.path.join(cls.work_dir, "demo"),
            "ckpt_dir": os.path.join(cls.work_dir, "models"),
        }

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.work_dir)

    def test_train_eval_config(self) -> None:
        override = {**TEST_CASE_1, **self.paths, "output_dir": os.path.join(self.work_dir, "train")}
        check_workflow(workflow("train", ["train.json"], override), check_properties=True)
        self.assertTrue(os.path.isfile(os.path.join(self.work_dir, "models", "model.pt")))

        override["output_dir"] = os.path.join(self.work_dir, "eval")
        # evaluate.json overrides train.json, hence the "train" workflow type (as the zoo's examples do)
        check_workflow(workflow("train", ["train.json", "evaluate.json"], override), check_properties=True)
        with open(os.path.join(self.work_dir, "eval", "val_mean_dice_raw.csv")) as f:
            self.assertEqual(len(list(csv.DictReader(f))), NUM_TEST)  # one row per test image

    def test_infer_config(self) -> None:
        self.assertTrue(os.path.isfile(os.path.join(self.work_dir, "models", "model.pt")), "train first")
        override = {**TEST_CASE_2, **self.paths, "output_dir": os.path.join(self.work_dir, "infer")}
        check_workflow(workflow("infer", ["inference.json"], override), check_properties=True)
        predictions = os.path.join(self.work_dir, "infer", "predictions")
        self.assertEqual(len(glob.glob(os.path.join(predictions, "test_*_seg.png"))), NUM_TEST)
        self.assertEqual(len(glob.glob(os.path.join(predictions, "test_*_overlay.png"))), NUM_TEST)


if __name__ == "__main__":
    loader = unittest.TestLoader()
    loader.sortTestMethodsUsing = test_order
    unittest.main(testLoader=loader)
