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
"""The model zoo package (tools/zoo_package.py): what can be checked without the zoo's own files.

The zoo's CI itself runs in ``.ci/run`` through ``tools/zoo_ci.py`` where ``../shared/model-zoo`` exists.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
import types
import unittest
from pathlib import Path

import pytest
import yaml

from tools.zoo_ci import HOOK_TYPES, absolute_command, hook_files
from tools.zoo_package import (
    MAX_FILE_BYTES,
    REPO_URL,
    ROOT,
    WEIGHTS,
    _tracked,
    build_package,
    bundle_name_of,
    card_for_zoo,
    check_package,
    main,
    md5_of,
    pretty_json,
    unit_test_path,
)

METADATA = json.loads((ROOT / "configs" / "metadata.json").read_text())
NAME = bundle_name_of(METADATA)
ZOO_CI_FILES = ROOT.parent / "shared" / "model-zoo"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """A zoo root with the package of this repository built into it (default weights URL)."""
    root = tmp_path_factory.mktemp("zoo")
    build_package(root)
    return root


def files_of(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_bundle_name_comes_from_metadata():
    assert NAME == "jcas_noisy_label_segmentation"
    assert bundle_name_of({"name": "  Spleen CT -- segmentation! "}) == "spleen_ct_segmentation"
    with pytest.raises(ValueError, match="'name'"):
        bundle_name_of({"name": "--"})


def test_package_holds_exactly_a_zoo_bundle(zoo):
    package = zoo / "models" / NAME
    tracked = _tracked(ROOT)  # in a git work tree, what git tracks ships (not local files); else every file
    present = {
        p.relative_to(ROOT).as_posix() for d in ("configs", "scripts") for p in (ROOT / d).rglob("*") if p.is_file()
    }
    present = {f for f in present if tracked is None or f in tracked}
    configs = {f for f in present if f.startswith("configs/")} - {"configs/metadata_schema.json"}
    scripts = {f for f in present if f.startswith("scripts/") and f.endswith(".py") and "__pycache__" not in f}
    figures = {f for f in files_of(package) if f.startswith("docs/") and f.endswith(".png")}
    assert "docs/demo_preview.png" in figures  # the card shows it
    expected = configs | scripts | figures | {"LICENSE", "docs/README.md", "docs/data_license.txt", "large_files.yml"}
    assert files_of(package) == expected
    assert not (package / "models").exists()  # the weights are listed, not copied
    assert {p.name for p in zoo.iterdir()} == {"models", "ci"}
    assert files_of(zoo / "ci") == {f"unit_tests/test_{NAME}.py"}
    for rel in configs | scripts | {"LICENSE", "docs/data_license.txt"} | figures:
        assert (package / rel).read_bytes() == (ROOT / rel).read_bytes(), rel
    assert check_package(zoo, NAME) == []


def test_files_fit_the_zoo_limit_and_are_not_executable(zoo):
    for path in (zoo / "models" / NAME).rglob("*"):
        if path.is_file():
            assert path.stat().st_size <= MAX_FILE_BYTES, path
            assert not path.stat().st_mode & 0o111, path


def test_large_files_lists_the_weights_with_their_md5(zoo, tmp_path):
    listed = yaml.safe_load((zoo / "models" / NAME / "large_files.yml").read_text())["large_files"]
    version = METADATA["version"]
    assert [entry["path"] for entry in listed] == list(WEIGHTS) == ["models/model.pt", "models/model.ts"]
    for entry in listed:
        assert entry["hash_type"] == "md5" and entry["hash_val"] == md5_of(ROOT / entry["path"])
        assert entry["url"] == f"{REPO_URL}/releases/download/v{version}/{Path(entry['path']).name}"
    build_package(tmp_path, weights_url="https://example.org/jcas/v9/")
    listed = yaml.safe_load((tmp_path / "models" / NAME / "large_files.yml").read_text())["large_files"]
    assert [entry["url"] for entry in listed] == [
        "https://example.org/jcas/v9/model.pt",
        "https://example.org/jcas/v9/model.ts",
    ]


def test_json_is_in_pre_commit_form(zoo):
    for path in [*(zoo / "models" / NAME).rglob("*.json"), *(ROOT / "configs").rglob("*.json")]:
        text = path.read_text(encoding="utf-8")
        assert pretty_json(text) == text, f"{path}: run python tools/zoo_package.py ZOO_ROOT --fix_json"


def test_pretty_json_is_what_the_pre_commit_hook_writes():
    """pretty-format-json --no-sort-keys --indent=4: key order kept, 4 spaces, ASCII escapes, [] and {} inline."""
    text = '{"b": [\n ], "a": {"x": 1e-4, "\u00b1": "\u00e9"}, "c": [1, 2]}'
    expected = (
        '{\n    "b": [],\n    "a": {\n        "x": 0.0001,\n        "\\u00b1": "\\u00e9"\n    },\n'
        '    "c": [\n        1,\n        2\n    ]\n}\n'
    )
    assert pretty_json(text) == expected
    hook = pytest.importorskip("pre_commit_hooks.pretty_format_json")  # the hook itself, where installed
    assert hook._get_pretty_format(text, indent=4, sort_keys=False) == expected


def test_unit_test_is_in_the_zoo_form_and_importable(zoo, monkeypatch):
    """The zoo's runner imports test_<bundle>.py with its ci/unit_tests on sys.path (utils.check_workflow)."""
    path = unit_test_path(zoo, NAME)
    utils = types.ModuleType("utils")
    utils.check_workflow = lambda workflow, check_properties=False: None
    monkeypatch.setitem(sys.modules, "utils", utils)
    spec = importlib.util.spec_from_file_location(f"test_{NAME}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.BUNDLE == NAME and module.BUNDLE_ROOT == f"models/{NAME}"
    cases = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, unittest.TestCase)]
    assert [{n for n in dir(c) if n.startswith("test_")} for c in cases] == [
        {"test_train_eval_config", "test_infer_config"}
    ]
    order = sorted(["test_infer_config", "test_train_eval_config"], key=functools.cmp_to_key(module.test_order))
    assert order == ["test_train_eval_config", "test_infer_config"]  # the zoo's runner sorts with test_order
    assert not [key for key in module.TEST_CASE_2 if "_disabled_" in key]  # inference loads what training wrote


def test_unit_test_names_the_bundle_it_is_written_for(tmp_path):
    build_package(tmp_path, bundle_name="jcas_test_name")
    text = unit_test_path(tmp_path, "jcas_test_name").read_text()
    assert re.search(r'^BUNDLE = "jcas_test_name"$', text, re.M)
    assert check_package(tmp_path, "jcas_test_name") == []


@pytest.fixture
def repo(tmp_path) -> Path:
    """A minimal bundle repository: metadata, one config, one script, licences, weights and a card."""
    root = tmp_path / "repo"
    for rel, text in {
        "configs/metadata.json": pretty_json('{"name": "Tiny seg", "version": "1.2.3", "changelog": {"1.2.3": "x"}}'),
        "configs/inference.json": "{}\n",
        "configs/metadata_schema.json": "{}\n",
        "scripts/__init__.py": '"""Tiny."""\n',
        "LICENSE": "licence\n",
        "README.md": "# Tiny\n",
        "docs/data_license.txt": "synthetic\n",
        "docs/notes.md": "notes\n",
        "docs/extra/more.md": "more\n",
        "models/model.pt": "pt",
        "models/model.ts": "ts",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "docs" / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


CARD = """# Tiny
![figure](fig.png) and <img src="fig.png" width="50%">
See [notes](notes.md), [usage](../README.md#usage), [folder](extra/), [config](../configs/inference.json),
[web](https://example.org/x.md), [here](#usage) and [ref][1].

```bash
[not a link](nowhere.md)
```

[1]: notes.md
"""


def test_card_links_point_to_the_package_or_the_tagged_repository(repo):
    shipped = {"configs/inference.json", "LICENSE"}
    text, figures, broken = card_for_zoo(CARD, shipped, "1.2.3", "https://github.com/o/r", repo)
    tag = "https://github.com/o/r/blob/v1.2.3"
    assert figures == ["docs/fig.png"] and broken == []
    assert "![figure](fig.png)" in text and '<img src="fig.png" width="50%">' in text  # figures ship with the card
    assert f"[notes]({tag}/docs/notes.md)" in text and f"[usage]({tag}/README.md#usage)" in text
    assert "[folder](https://github.com/o/r/tree/v1.2.3/docs/extra)" in text
    assert "[config](../configs/inference.json)" in text  # ships: stays relative
    assert "[web](https://example.org/x.md)" in text and "[here](#usage)" in text
    assert "[not a link](nowhere.md)" in text  # code blocks are left alone
    assert f"[1]: {tag}/docs/notes.md" in text
    _, _, broken = card_for_zoo("[gone](gone.md) ![missing](missing.png)", shipped, "1.2.3", root=repo)
    assert broken == ["gone.md: no such file in the repository", "missing.png: no such file in the repository"]


def test_build_package_from_a_minimal_repository(repo, tmp_path):
    (repo / "docs" / "README.md").write_text(CARD)
    package = build_package(tmp_path / "zoo", root=repo, repo_url="https://github.com/o/r")
    assert package == tmp_path / "zoo" / "models" / "tiny_seg"
    assert files_of(package) == {
        "LICENSE",
        "configs/inference.json",
        "configs/metadata.json",
        "docs/README.md",
        "docs/data_license.txt",
        "docs/fig.png",
        "large_files.yml",
        "scripts/__init__.py",
    }
    assert check_package(tmp_path / "zoo", "tiny_seg", root=repo) == []
    (repo / "docs" / "README.md").write_text("[gone](gone.md)\n")
    with pytest.raises(ValueError, match="broken links: gone.md"):
        build_package(tmp_path / "zoo", root=repo)
    (repo / "models" / "model.ts").unlink()
    with pytest.raises(FileNotFoundError, match="models/model.ts"):
        build_package(tmp_path / "zoo", root=repo)


def _big_figure(package: Path) -> None:
    (package / "docs" / "big.png").write_bytes(b"\0" * (MAX_FILE_BYTES + 1))


def _bad_hash(package: Path) -> None:
    path = package / "large_files.yml"
    path.write_text(re.sub(r'hash_val: "\w+"', 'hash_val: "0"', path.read_text(), count=1))


def _long_changelog(package: Path) -> None:
    path = package / "configs" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["changelog"][metadata["version"]] = "first line\nsecond line"
    path.write_text(pretty_json(json.dumps(metadata)))


MUTATIONS = [  # (what is done to a good package, what check_package must say)
    (_big_figure, "docs/big.png: 1048577 bytes, over the zoo's limit"),
    (lambda p: (p / "configs" / "inference.json").write_text('{"a": 1}\n'), "configs/inference.json: not in pretty"),
    (
        lambda p: (p / "scripts" / "__init__.py").write_text('"""x"""'),
        "scripts/__init__.py: expected exactly one final",
    ),
    (lambda p: (p / "scripts" / "__init__.py").write_text('"""x"""  \n'), "scripts/__init__.py: trailing whitespace"),
    (lambda p: (p / "LICENSE").write_bytes(b"a\r\nb\n"), "LICENSE: expected LF line endings"),
    (lambda p: (p / "LICENSE").chmod(0o755), "LICENSE: executable"),
    (_bad_hash, "large_files.yml: models/model.pt: hash_val is not the md5"),
    (lambda p: (p / "docs" / "data_license.txt").unlink(), "docs/data_license.txt: missing"),
    (lambda p: (p / "models").mkdir() or (p / "models" / "model.pt").write_text("w"), "models/model.pt: a zoo bundle"),
    (lambda p: (p / "scripts" / "extra.py").write_text('"""x"""\n'), "scripts/extra.py: not a file of the bundle"),
    (_long_changelog, "changelog 0.0.1: expected one line"),
]


@pytest.mark.parametrize("mutate, message", MUTATIONS)
def test_check_package_names_what_the_zoo_would_refuse(repo, tmp_path, mutate, message):
    metadata = {"name": "Tiny seg", "version": "0.0.1", "changelog": {"0.0.1": "first"}}
    (repo / "configs" / "metadata.json").write_text(pretty_json(json.dumps(metadata)))
    (repo / "docs" / "README.md").write_text("# Tiny\n")
    package = build_package(tmp_path, root=repo)
    mutate(package)
    problems = check_package(tmp_path, "tiny_seg", root=repo)
    assert any(problem.startswith(message) or message in problem for problem in problems), problems


def test_check_package_finds_a_missing_unit_test(zoo, tmp_path):
    build_package(tmp_path)
    unit_test_path(tmp_path, NAME).unlink()
    assert [p for p in check_package(tmp_path, NAME) if "runner would skip" in p]


def test_metadata_declares_every_runtime_requirement():
    """The zoo installs what metadata declares: every package of requirements.txt, torch and monai as pinned there.

    numpy, scipy, pillow and matplotlib may be older in metadata (the newest with a Python 3.10 build: the zoo's
    premerge runs 3.10); tools/zoo_ci.py checks that they install there.
    """
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    declared = {"torch": METADATA["pytorch_version"], "monai": METADATA["monai_version"]}
    declared |= {"numpy": METADATA["numpy_version"], **METADATA["required_packages_version"]}
    assert set(declared) == set(pins)
    assert {k: v for k, v in declared.items() if v != pins[k]}.keys() <= {"numpy", "scipy", "pillow", "matplotlib"}
    assert declared["torch"] == pins["torch"] and declared["monai"] == pins["monai"]


def test_main_builds_checks_and_reports(tmp_path, capsys):
    assert main([str(tmp_path), "--weights_url", "https://example.org/w"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'models' / NAME}" in out and f"test_{NAME}.py" in out


def test_hook_files_follow_pre_commit_types_and_excludes():
    files = ["a.py", "b.json", "models/model.ts", "c.yml", "run.sh"]
    tags = {
        "a.py": {"file", "text", "python", "non-executable"},
        "b.json": {"file", "text", "json", "non-executable"},
        "models/model.ts": {"file", "text", "ts", "non-executable"},  # identify calls .ts TypeScript: text
        "c.yml": {"file", "text", "yaml", "non-executable"},
        "run.sh": {"file", "text", "shell", "executable"},
    }
    assert hook_files("pretty-format-json", files, tags, [""]) == ["b.json"]
    assert hook_files("end-of-file-fixer", files, tags, ["", ""]) == files
    assert hook_files("trailing-whitespace", files, tags, [r".*\.(ts|pt)$"]) == ["a.py", "b.json", "c.yml", "run.sh"]
    assert hook_files("check-executables-have-shebangs", files, tags, []) == ["run.sh"]
    assert hook_files("check-added-large-files", files, tags, [r".*\.ipynb$"]) == files


def test_tools_python_is_made_absolute(tmp_path, monkeypatch):
    """The checks run in the scratch folder, so .ci/run's relative .venv-zoo/bin/python must become absolute."""
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    monkeypatch.chdir(tmp_path)
    assert absolute_command("venv/bin/python") == str(python)  # absolute, the link kept (not resolved)
    assert absolute_command("no-such-python") == "no-such-python"


@pytest.mark.skipif(not ZOO_CI_FILES.is_dir(), reason="no ../shared/model-zoo (the zoo's CI files) here")
def test_every_zoo_hook_is_known_to_zoo_ci():
    config = yaml.safe_load((ZOO_CI_FILES / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert [repo["rev"] for repo in config["repos"]] == ["v4.6.0"]  # HOOK_TYPES is pre-commit-hooks v4.6.0's
    assert {hook["id"] for hook in hooks} <= set(HOOK_TYPES)
