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
"""Confident learning on a tiny example computed by hand, and the ranking metrics of the label-cleaning
benchmark."""

from __future__ import annotations

import numpy as np

from benchmarks.confident_learning import (
    class_thresholds,
    confident_joint,
    confident_labels,
    issue_corrected,
    issue_share,
)
from benchmarks.label_cleaning import auroc, precision_at_k

# one image, 2 classes, 4 pixels: labels 0, 0, 1, 1
PROBS = np.array([[0.9, 0.3, 0.8, 0.2], [0.1, 0.7, 0.2, 0.8]])[:, None]  # C, 1, 4
LABEL = np.array([[0, 0, 1, 1]])


def test_thresholds_joint_and_issues_by_hand():
    # t_0 = mean p_0 over pixels labelled 0 = (0.9 + 0.3) / 2 = 0.6; t_1 = (0.2 + 0.8) / 2 = 0.5
    thresholds = class_thresholds([(PROBS, LABEL)], 2)
    np.testing.assert_allclose(thresholds, [0.6, 0.5])
    # pixel 0: p_0 0.9 >= 0.6 -> 0; pixel 1: p_1 0.7 >= 0.5 -> 1; pixel 2: p_0 0.8 -> 0; pixel 3: p_1 0.8 -> 1
    np.testing.assert_array_equal(confident_labels(PROBS, thresholds), [[0, 1, 0, 1]])
    # C[given][y*]: (0, 0) pixel 0, (0, 1) pixel 1, (1, 0) pixel 2, (1, 1) pixel 3
    np.testing.assert_array_equal(confident_joint([(PROBS, LABEL)], thresholds, 2), [[1, 1], [1, 1]])
    assert issue_share(PROBS, LABEL, thresholds) == 0.5  # pixels 1 and 2
    np.testing.assert_array_equal(issue_corrected(PROBS, LABEL, thresholds), [[0, 1, 0, 1]])


def test_no_class_above_threshold_is_not_counted():
    probs = np.array([[0.55], [0.45]])[:, None]  # 1 x 1, labelled 1
    thresholds = np.array([0.6, 0.5])
    assert confident_labels(probs, thresholds).tolist() == [[-1]]
    assert confident_joint([(probs, np.array([[1]]))], thresholds, 2).sum() == 0
    assert class_thresholds([(probs, np.array([[1]]))], 2)[0] == np.inf  # no pixel labelled 0


def test_ignored_pixels_are_left_out():
    label = np.array([[0, 255, 1, 1]])
    thresholds = class_thresholds([(PROBS, label)], 2, ignore_index=255)
    np.testing.assert_allclose(thresholds, [0.9, 0.5])  # t_0 from pixel 0 alone
    # the ignored pixel (p_1 0.7 >= t_1) is no issue; pixel 2 (0.8, 0.2) is now confident of no class
    assert issue_share(PROBS, label, thresholds, ignore_index=255) == 0.0


def test_precision_at_k_and_auroc():
    scores = [0.9, 0.8, 0.7, 0.1]
    truth = [True, False, True, False]
    assert precision_at_k(scores, truth, 2) == 0.5
    assert precision_at_k(scores, truth) == 0.5  # k = the number of positives
    # positive-negative pairs ranked right: (0.9 > 0.8), (0.9 > 0.1), (0.7 > 0.1); wrong: (0.7 < 0.8): 3 / 4
    assert auroc(scores, truth) == 0.75
    assert auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
