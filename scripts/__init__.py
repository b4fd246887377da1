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
"""JCAS bundle package: network, DAR, transition matrices, losses, noise transforms, handlers, data tools, outputs.

Configs reach everything as ``scripts.<module>.<name>`` (after ``$import scripts``) or by ``_target_``.
"""

from . import (
    checkpoint,
    cleaning_handler,
    cleaning_report,
    config,
    config_check,
    dar,
    data,
    demo_data,
    demo_data_3d,
    distributed,
    divergence,
    early_learning,
    export_onnx,
    folder_lock,
    handlers,
    label_cleaning,
    losses,
    model_labels,
    network,
    noise,
    noise_rates,
    outputs,
    reports,
    robust_losses,
    torchscript,
    tracking,
    transition,
)
from .checkpoint import latest_checkpoint
from .cleaning_handler import LabelCleaningHandler
from .dar import DAR, dar_rectify
from .data import CheckImageLabeld, LoadImageByFormatd, load_datalist
from .demo_data import ensure_demo_dataset, make_demo_dataset
from .demo_data_3d import ensure_demo_dataset_3d, make_demo_dataset_3d
from .early_learning import EarlyLearningCorrection, EarlyLearningMonitor, MultiScaleInferer
from .handlers import (
    CALCStageHandler,
    CALCStatsHandler,
    TransitionEstimateHandler,
    TransitionOptimizerHandler,
    ValidationPlateauStop,
)
from .losses import CALCLoss, class_prior
from .network import JCASNet
from .noise import SimulateLabelNoise, SimulateLabelNoised, noise_transition_matrix
from .noise_rates import noise_rates as compute_noise_rates
from .outputs import Overlayd, PaletteWriter, label_palette
from .reports import ClassMetricsHandler, ClassMetricsSaver, LearningCurveHandler, ValidationImagesHandler
from .robust_losses import GCELoss, LogitsLoss, TLoss, make_loss
from .transition import NoiseTransition, affinity_transition_from_class, anchor_transition

__all__ = [
    "DAR",
    "EarlyLearningCorrection",
    "EarlyLearningMonitor",
    "MultiScaleInferer",
    "CALCLoss",
    "GCELoss",
    "LogitsLoss",
    "TLoss",
    "CALCStageHandler",
    "CALCStatsHandler",
    "CheckImageLabeld",
    "ClassMetricsHandler",
    "ClassMetricsSaver",
    "JCASNet",
    "LabelCleaningHandler",
    "LearningCurveHandler",
    "LoadImageByFormatd",
    "NoiseTransition",
    "Overlayd",
    "PaletteWriter",
    "SimulateLabelNoise",
    "SimulateLabelNoised",
    "TransitionEstimateHandler",
    "TransitionOptimizerHandler",
    "ValidationImagesHandler",
    "ValidationPlateauStop",
    "affinity_transition_from_class",
    "checkpoint",
    "cleaning_handler",
    "cleaning_report",
    "anchor_transition",
    "class_prior",
    "compute_noise_rates",
    "config",
    "config_check",
    "dar",
    "dar_rectify",
    "data",
    "demo_data",
    "demo_data_3d",
    "distributed",
    "divergence",
    "early_learning",
    "ensure_demo_dataset",
    "ensure_demo_dataset_3d",
    "export_onnx",
    "folder_lock",
    "handlers",
    "label_cleaning",
    "label_palette",
    "latest_checkpoint",
    "load_datalist",
    "losses",
    "make_demo_dataset",
    "make_demo_dataset_3d",
    "network",
    "noise",
    "noise_rates",
    "noise_transition_matrix",
    "outputs",
    "make_loss",
    "model_labels",
    "reports",
    "robust_losses",
    "torchscript",
    "tracking",
    "transition",
]
