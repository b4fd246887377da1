# Copyright (c) 2026 JCAS bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
"""configs/paper_recipe.json: the paper's JCAS as an overlay, whatever the defaults have become."""

from __future__ import annotations

from monai.bundle import ConfigParser

from tests.test_bundle import CONFIGS, ROOT

KEYS = ("warmup_epochs", "early_stop_patience", "warmup_gce_q", "warmup_dice", "anchor_calibration", "correction_gce_q")


def settings(*names: str, **overrides) -> tuple:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / name) for name in names])
    parser["bundle_root"] = str(ROOT)
    for key, value in overrides.items():
        parser[key] = value
    return tuple(parser.get_parsed_content(key) for key in KEYS)


def test_the_overlay_restores_the_paper_schedule_and_losses():
    """The default switches on its own curves, stops early, and warms up with a bounded loss and Dice; the overlay
    gives the paper's fixed warm-up of 3/8 of the budget, the plain NLL warm-up and no early stop."""
    assert settings("train.json") == ("auto", 10, 0.7, True, True, None)
    assert settings("train.json", "paper_recipe.json", max_epochs=80) == (30, None, None, False, False, None)
    assert settings("train.json", "paper_recipe.json", max_epochs=40) == (15, None, None, False, False, None)
