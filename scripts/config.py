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
"""Parsing of config values given on the command line.

``python -m monai.bundle run --use_dar false`` passes the *string* ``'false'`` (python-fire reads only Python
literals: ``False``), which is truthy. Configs pass user-facing flags through :func:`as_bool`.
"""

from __future__ import annotations

from typing import Any

from monai.utils import str2bool

__all__ = ["as_bool"]


def as_bool(value: Any, name: str = "value") -> bool:
    """``value`` as a bool through :func:`monai.utils.str2bool`: a bool, 0/1, or a string such as
    ``"true"``/``"False"``/``"no"`` (surrounding spaces ignored).

    Raises:
        ValueError: for anything else, naming the config key ``name``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    try:
        return str2bool(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(f"config key '{name}' must be true or false, got {value!r}") from None
