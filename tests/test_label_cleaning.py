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
"""Scores and corrections of scripts/label_cleaning.py on hand-made arrays with values computed by hand."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from scripts.label_cleaning import (
    case_scores,
    changed_area,
    class_scores,
    corrected_label,
    foreground_dice,
    given_label_probability,
    noisy_label_probabilities,
    open_mask,
    pair_suspicion,
    read_transitions,
    suspect_pixels,
    suspicion_score,
)

# two classes, three pixels in a row: the network is sure of class 0, fairly sure of class 1, unsure
PROBS = torch.tensor([[0.95, 0.1, 0.5], [0.05, 0.9, 0.5]])[:, None]  # C=2, 1 x 3
T_NOISY = torch.tensor([[0.9, 0.1], [0.2, 0.8]])  # 10 % of class 0 labelled 1, 20 % of class 1 labelled 0


def test_noisy_probabilities_are_p_times_t_class():
    noisy = noisy_label_probabilities(PROBS, T_NOISY)
    # pixel 0: p = (0.95, 0.05): p T = (0.95 * 0.9 + 0.05 * 0.2, 0.95 * 0.1 + 0.05 * 0.8) = (0.865, 0.135)
    torch.testing.assert_close(noisy[:, 0, 0], torch.tensor([0.865, 0.135]))
    torch.testing.assert_close(noisy.sum(dim=0), torch.ones(1, 3))


@pytest.mark.parametrize(
    "t_class, threshold, expected",
    [
        # identity: p̃[1] = p[1] = (0.05, 0.9, 0.5): only the first pixel's label 1 is improbable
        (torch.eye(2), 0.1, [True, False, False]),
        # the noise model expects class 0 labelled 1 10 % of the time: p̃[1] of pixel 0 is 0.135, not below 0.1
        (T_NOISY, 0.1, [False, False, False]),
        (T_NOISY, 0.2, [True, False, False]),
        (torch.eye(2), 0.6, [True, False, True]),  # p̃[1] = 0.5 < 0.6
    ],
)
def test_suspect_where_the_given_label_is_improbable(t_class, threshold, expected):
    label = torch.tensor([[1, 1, 1]])
    assert suspect_pixels(PROBS, label, t_class, threshold)[0].tolist() == expected


def test_ignored_pixels_are_never_suspect_nor_changed():
    label = torch.tensor([[255, 1, 1]])
    assert given_label_probability(PROBS, label, ignore_index=255)[0, 0] == 1.0
    suspect = suspect_pixels(PROBS, label, torch.eye(2), 0.1, ignore_index=255)
    assert not suspect.any()
    everything = torch.ones_like(suspect)  # all suspect: argmax p (the first class on a tie), 255 kept
    assert corrected_label(PROBS, label, torch.eye(2), everything, 255)[0].tolist() == [255, 1, 0]


def test_correction_uses_the_network_where_suspect_and_bayes_elsewhere():
    label = torch.tensor([[1, 0, 0]])
    suspect = suspect_pixels(PROBS, label, torch.eye(2), 0.1)  # pixel 0: p̃[1] = 0.05; pixel 1: p̃[0] = 0.1, not < 0.1
    assert suspect[0].tolist() == [True, False, False]
    # T_C = I: argmax_y p[y] T[y, ỹ] is always ỹ, so only the suspect pixel changes
    assert corrected_label(PROBS, label, torch.eye(2), suspect)[0].tolist() == [0, 0, 0]
    # class 1 labelled 0 60 % of the time: pixel 1 (p = 0.1, 0.9, given 0) has p[0] T[0, 0] = 0.1 against
    # p[1] T[1, 0] = 0.54, so Bayes gives 1; pixel 2 (0.5, 0.5): 0.5 against 0.3, the given 0 stays
    confusion = torch.tensor([[1.0, 0.0], [0.6, 0.4]])
    suspect = suspect_pixels(PROBS, label, confusion, 0.1)
    assert suspect[0].tolist() == [True, False, False]  # p̃[0] of pixel 1 is 0.1 + 0.54: expected, not suspect
    assert corrected_label(PROBS, label, confusion, suspect)[0].tolist() == [0, 1, 0]


def test_scores_areas_and_dice_by_hand():
    given = torch.tensor([[0, 1, 1, 2, 0, 0]])
    corrected = torch.tensor([[0, 1, 0, 2, 2, 0]])
    suspect = torch.tensor([[False, False, True, False, True, True]])
    # foreground in either label: pixels 1, 2, 3, 4; suspect among them: 2 and 4
    assert suspicion_score(suspect, given, corrected, 3) == pytest.approx(2 / 4)
    # class 0 in either: pixels 0, 2, 4, 5 (suspect 2, 4, 5); class 1: 1, 2 (suspect 2); class 2: 3, 4 (suspect 4)
    assert class_scores(suspect, given, corrected, 4) == pytest.approx([3 / 4, 1 / 2, 1 / 2, None])
    assert changed_area(given, corrected, 4) == [2, 1, 1, 0]
    # class 1: 2 * 1 / (2 + 1); class 2: 2 * 1 / (1 + 2); class 3 absent from both
    assert foreground_dice(given, corrected, 4) == pytest.approx(2 / 3)
    assert foreground_dice(torch.zeros(2, 2), torch.zeros(2, 2), 4) == 1.0
    assert suspicion_score(suspect[:, :1], given[:, :1], corrected[:, :1], 3) == 0.0  # no foreground


@pytest.mark.parametrize(
    "t_affinity, expected",
    [
        # the only pair of two pixels: given different (1, 0), surely the same class (both 0): suspect
        (torch.eye(2), 1.0),
        # a noise model that splits 95 % of same-class pairs: the given "different" is expected, nothing suspect
        (torch.tensor([[1.0, 0.0], [0.95, 0.05]]), 0.0),
    ],
)
def test_pair_suspicion_with_t_affinity(t_affinity, expected):
    probs = torch.tensor([[1.0, 1.0], [0.0, 0.0]])[:, None]  # 1 x 2 pixels, both surely class 0
    label = torch.tensor([[1, 0]])
    share = pair_suspicion(probs, label, label, t_affinity, grid=(1, 2), threshold=0.1, num_pairs=20000)
    assert share == pytest.approx(expected, abs=0.02)  # standard error 0.0035


def test_pair_suspicion_is_seeded_and_zero_without_foreground():
    probs = torch.softmax(torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(0)), dim=0)
    label = torch.randint(0, 3, (8, 8), generator=torch.Generator().manual_seed(1))
    args = (probs, label, label, torch.eye(2), (4, 4))
    assert pair_suspicion(*args, seed=3) == pair_suspicion(*args, seed=3)
    zero = torch.zeros(8, 8, dtype=torch.long)
    assert pair_suspicion(probs, zero, zero, torch.eye(2), (4, 4)) == 0.0


def test_case_scores_in_3d():
    probs = torch.zeros(3, 4, 4, 4)
    probs[0] = 1.0
    probs[:, 1:3, 1:3, 1:3] = torch.tensor([0.0, 1.0, 0.0])[:, None, None, None]  # a cube of class 1
    label = torch.zeros(4, 4, 4, dtype=torch.long)
    label[1:3, 1:3, 1:3] = 2  # labelled 2: every voxel of the cube is suspect and becomes 1
    corrected, scores = case_scores(
        probs, label, torch.eye(3), torch.eye(2), grid=(2, 2, 2), num_pairs=1000, opening_radius=0
    )
    assert torch.equal(corrected, torch.where(label == 2, 1, 0))
    assert scores["score"] == 1.0 and scores["pixel_share"] == pytest.approx(8 / 64)
    assert scores["changed"] == [0, 8, 8] and scores["dice"] == 0.0


def test_opening_drops_suspect_regions_thinner_than_its_cube():
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[0:3, 0:3] = True  # a 3 x 3 square in the corner: kept whole (the border does not erode it)
    mask[4, :] = True  # a 1-pixel line: dropped
    mask[1, 5:7] = True  # a 1 x 2 sliver: dropped
    opened = open_mask(mask)
    assert opened.sum() == 9 and opened[0:3, 0:3].all()
    assert torch.equal(open_mask(mask, 0), mask)
    inner = torch.zeros(7, 7, dtype=torch.bool)
    inner[2:5, 2:5] = True  # 3 pixels wide: kept by a 3 x 3 cube, not by a 5 x 5 one
    assert open_mask(inner, 1).sum() == 9 and open_mask(inner, 2).sum() == 0
    volume = torch.zeros(5, 5, 5, dtype=torch.bool)
    volume[1:4, 1:4, 1:4] = True
    volume[0, 0, 4] = True
    assert open_mask(volume).sum() == 27


def test_opening_in_case_scores_keeps_thick_regions_only():
    probs = torch.stack([torch.full((8, 8), 0.99), torch.full((8, 8), 0.01)])  # sure of class 0 everywhere
    label = torch.zeros(8, 8, dtype=torch.long)
    label[2:5, 2:5] = 1  # a 3 x 3 wrong square: stays suspect and is corrected
    label[7, :] = 1  # a wrong 1-pixel line: dropped by the opening, kept as given
    corrected, scores = case_scores(probs, label, torch.eye(2), torch.eye(2), grid=(4, 4), num_pairs=100)
    assert corrected[2:5, 2:5].eq(0).all() and corrected[7].eq(1).all()
    assert scores["changed"] == [9, 9] and scores["score"] == pytest.approx(9 / 17)


def test_a_case_scored_below_clean_min_score_keeps_its_given_label():
    """The same case as above (score 9/17 = 0.53): corrected at clean_min_score 0.5, kept as given at 0.6, with
    the same scores (the ranking does not change) and nothing changed."""
    probs = torch.stack([torch.full((8, 8), 0.99), torch.full((8, 8), 0.01)])
    label = torch.zeros(8, 8, dtype=torch.long)
    label[2:5, 2:5] = 1
    label[7, :] = 1
    args = (probs, label, torch.eye(2), torch.eye(2))
    corrected, scores = case_scores(*args, grid=(4, 4), num_pairs=100, min_score=0.5)
    assert scores["changed"] == [9, 9]
    kept, kept_scores = case_scores(*args, grid=(4, 4), num_pairs=100, min_score=0.6)
    assert torch.equal(kept, label) and kept_scores["changed"] == [0, 0] and kept_scores["dice"] == 1.0
    assert kept_scores["score"] == scores["score"] and kept_scores["pair_score"] == scores["pair_score"]
    with pytest.raises(ValueError, match="clean_min_score"):
        case_scores(*args, grid=(4, 4), num_pairs=100, min_score=1.5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="suspect_opening_radius"):
        open_mask(torch.ones(3, 3, dtype=torch.bool), -1)
    with pytest.raises(ValueError, match="suspect_threshold"):
        suspect_pixels(PROBS, torch.tensor([[1, 1, 1]]), torch.eye(2), 0.0)
    with pytest.raises(ValueError, match="same size"):
        suspect_pixels(PROBS, torch.tensor([[1, 1]]), torch.eye(2))
    with pytest.raises(ValueError, match=r"\(2, 2\) t_class"):
        noisy_label_probabilities(PROBS, torch.eye(3))


def _checkpoint(path, t_class, correction=True):
    loss = {
        "t_class.weight": torch.log(t_class),
        "t_affinity.weight": torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8]])),
    }
    loss["_correction"] = torch.tensor(correction)
    torch.save({"loss": loss, "network": {}}, path)


def test_read_transitions_prefers_the_final_checkpoint(tmp_path, caplog):
    t_final = torch.tensor([[0.8, 0.2], [0.1, 0.9]])
    _checkpoint(tmp_path / "checkpoint_final.pt", t_final)
    _checkpoint(tmp_path / "checkpoint_epoch=9.pt", torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    t_class, t_affinity, source = read_transitions(str(tmp_path), None, 2)
    torch.testing.assert_close(t_class, t_final)
    torch.testing.assert_close(t_affinity, torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    assert source.endswith("checkpoint_final.pt")
    (tmp_path / "checkpoint_final.pt").unlink()
    _checkpoint(tmp_path / "checkpoint_epoch=10.pt", t_final)  # the highest epoch, not the last in name order
    assert read_transitions(str(tmp_path), None, 2)[2].endswith("checkpoint_epoch=10.pt")


def test_read_transitions_falls_back_to_json_then_identity(tmp_path, caplog):
    _checkpoint(tmp_path / "checkpoint_final.pt", torch.tensor([[0.8, 0.2], [0.1, 0.9]]), correction=False)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "transitions.json").write_text(
        json.dumps({"epoch": 3, "T_C": [[0.7, 0.3], [0, 1]], "T_A": [[1, 0], [0, 1]]})
    )
    t_class, _, source = read_transitions(str(tmp_path), str(out), 2)
    torch.testing.assert_close(t_class, torch.tensor([[0.7, 0.3], [0.0, 1.0]]))
    assert source.endswith("transitions.json")
    (out / "transitions.json").unlink()
    with caplog.at_level(logging.WARNING):
        t_class, t_affinity, source = read_transitions(str(tmp_path), str(out), 2)
    assert source == "identity" and torch.equal(t_class, torch.eye(2)) and torch.equal(t_affinity, torch.eye(2))
    assert "never reached the correction stage" in caplog.text and "T_C = I" in caplog.text


def test_read_transitions_names_a_file_of_the_wrong_size(tmp_path):
    _checkpoint(tmp_path / "checkpoint_final.pt", torch.tensor([[0.8, 0.2], [0.1, 0.9]]))
    with pytest.raises(ValueError, match=r"checkpoint_final.pt': expected T_C \(4, 4\)"):
        read_transitions(str(tmp_path), None, 4)
