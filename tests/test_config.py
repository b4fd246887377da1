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
from __future__ import annotations

import pytest
from scripts.config import as_bool


@pytest.mark.parametrize(
    "value,expected",
    [
        (True, True),
        (False, False),
        ("false", False),
        ("False", False),
        ("TRUE", True),
        (" yes ", True),
        (0, False),
        (1, True),
        ("0", False),
    ],
)
def test_as_bool(value, expected):
    assert as_bool(value, "flag") is expected


@pytest.mark.parametrize("value", ["null", "maybe", 2, None, 0.5])
def test_as_bool_rejects(value):
    with pytest.raises(ValueError, match="config key 'use_dar' must be true or false"):
        as_bool(value, "use_dar")
