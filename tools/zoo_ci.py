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
"""The MONAI model zoo's own CI, run offline on a freshly built zoo package of this bundle.

Usage, with the zoo's CI files (an unmodified copy of Project-MONAI/model-zoo's ``ci/``, configs and schema)::

    python tools/zoo_ci.py ../shared/model-zoo [--tools_python .venv-zoo/bin/python] [--work DIR] [--pytype]

Copies ZOO_DIR to a scratch folder (a git repository, so that the package's files are "added" as in a pull
request), builds the package there with ``tools/zoo_package.py``, then runs, each as the zoo runs it:

- code format with the zoo's ``setup.cfg``/``pyproject.toml``: isort, black ``--skip-magic-trailing-comma``,
  flake8 (and pytype with ``--pytype``; slow), on the package and its unit test;
- the pre-commit hooks of the zoo's ``.pre-commit-config.yaml`` (pre-commit-hooks v4.6.0) with their arguments,
  each on the files pre-commit would give it (file types by ``identify``, the config's excludes): offline,
  pre-commit itself cannot fetch the hook repository, so this runs the hooks' own entry points;
- ``ci/get_bundle_requirements.py`` (``ALLOW_MONAI_RC=true``, as the premerge sets) and a dry-run
  ``pip install --pre -r`` of its output on Python 3.10, the premerge's version (skipped where no 3.10 is found;
  needs the package registry);
- ``ci/prepare_schema.py``, ``ci/verify_bundle.py`` in min and full mode, ``ci/unit_tests/runner.py --b``.

Offline stand-ins for the two downloads: the schema file is put where ``prepare_schema`` downloads it, and the
repository's weights where ``download_large_files`` writes them; both then find the file (the weights with the
md5 of ``large_files.yml``) and skip the download. The code-format and pre-commit tools run with
``--tools_python`` (``tools/requirements-zoo.txt`` installs them); everything else with this interpreter, which
needs the bundle's requirements. Prints one line per step and ``zoo: N passed, N failed, N skipped``; exits 1 if
a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

try:
    from tools.zoo_package import ROOT, WEIGHTS, bundle_name_of, unit_test_path
except ModuleNotFoundError:  # run as a script: python tools/zoo_ci.py
    from zoo_package import ROOT, WEIGHTS, bundle_name_of, unit_test_path

__all__ = ["HOOK_TYPES", "Step", "absolute_command", "find_python310", "hook_files", "main", "run_zoo_ci"]

# from pre-commit-hooks v4.6.0's .pre-commit-hooks.yaml: the file types (all must match) each hook the zoo uses is
# given, and its entry point
HOOK_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "check-added-large-files": ("check_added_large_files", ()),
    "check-case-conflict": ("check_case_conflict", ()),
    "check-docstring-first": ("check_docstring_first", ("python",)),
    "check-executables-have-shebangs": ("check_executables_have_shebangs", ("text", "executable")),
    "check-toml": ("check_toml", ("toml",)),
    "check-yaml": ("check_yaml", ("yaml",)),
    "detect-private-key": ("detect_private_key", ("text",)),
    "end-of-file-fixer": ("end_of_file_fixer", ("text",)),
    "forbid-new-submodules": ("forbid_new_submodules", ("directory",)),
    "mixed-line-ending": ("mixed_line_ending", ("text",)),
    "pretty-format-json": ("pretty_format_json", ("json",)),
    "trailing-whitespace": ("trailing_whitespace_fixer", ("text",)),
}
SCHEMA_SOURCE = "schema"  # where the zoo's CI files keep the metadata schema that prepare_schema downloads
TAIL_LINES = 25  # output lines shown of a failed step


@dataclass
class Step:
    """One check of the zoo's CI and its outcome (``passed``, ``failed`` or ``skipped``)."""

    name: str
    command: str
    status: str
    seconds: float
    output: str = ""


def _run(
    name: str, cmd: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, ok: Sequence[int] = (0,)
) -> Step:
    """Run ``cmd`` in ``cwd``; the step passes when the exit status is in ``ok``."""
    start = time.monotonic()
    proc = subprocess.run(
        list(cmd), cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, errors="replace"
    )
    shown = " ".join(f"{k}={v}" for k, v in (env or {}).items()) + (" " if env else "") + " ".join(map(str, cmd))
    status = "passed" if proc.returncode in ok else "failed"
    return Step(name, shown, status, time.monotonic() - start, proc.stdout + proc.stderr)


def find_python310() -> tuple[list[str], dict[str, str]] | None:
    """A Python 3.10 interpreter (the zoo's premerge version) as (command, environment), or None.

    Tries ``python3.10`` on the PATH, then each 3.10 of pyenv (``PYENV_VERSION=3.10.x pyenv exec python``: a bare
    ``python`` would be the activated virtual environment's).
    """
    candidates: list[tuple[list[str], dict[str, str]]] = [(["python3.10"], {})]
    try:
        bare = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, timeout=60).stdout
        candidates += [
            (["pyenv", "exec", "python"], {"PYENV_VERSION": v}) for v in bare.split() if v.startswith("3.10")
        ]
    except (OSError, subprocess.TimeoutExpired):
        pass
    for cmd, env in candidates:
        try:
            out = subprocess.run(
                [*cmd, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == "True":
            return cmd, env
    return None


def hook_files(hook_id: str, files: Sequence[str], tags: Mapping[str, set[str]], excludes: Sequence[str]) -> list[str]:
    """The files pre-commit gives ``hook_id``: those with all of its types and matching none of ``excludes``."""
    types = set(HOOK_TYPES[hook_id][1])
    return [f for f in files if types <= tags[f] and not any(re.search(pattern, f) for pattern in excludes if pattern)]


def _pre_commit(zoo: Path, files: list[str], tools_python: str) -> list[Step]:
    """Every hook of the zoo's .pre-commit-config.yaml on ``files`` (paths relative to ``zoo``), in order."""
    config = yaml.safe_load((zoo / ".pre-commit-config.yaml").read_text())
    tags_code = (
        "import json, sys; from identify.identify import tags_from_path; "
        "print(json.dumps({f: sorted(tags_from_path(f)) for f in sys.argv[1:]}))"
    )
    proc = subprocess.run([tools_python, "-c", tags_code, *files], cwd=zoo, capture_output=True, text=True)
    if proc.returncode != 0:
        return [Step("pre-commit: identify", f"{tools_python} -c <identify>", "failed", 0.0, proc.stderr)]
    tags = {f: set(t) for f, t in json.loads(proc.stdout).items()}
    steps = []
    for repo in config["repos"]:
        for hook in repo["hooks"]:
            hook_id = hook["id"]
            if hook_id not in HOOK_TYPES:
                steps.append(Step(f"pre-commit: {hook_id}", "", "failed", 0.0, "hook not known to tools/zoo_ci.py"))
                continue
            selected = hook_files(hook_id, files, tags, [config.get("exclude", ""), hook.get("exclude", "")])
            module = HOOK_TYPES[hook_id][0]
            cmd = [tools_python, "-c", f"import sys; from pre_commit_hooks.{module} import main; sys.exit(main())"]
            if not selected:
                steps.append(Step(f"pre-commit: {hook_id}", "no file of its types", "skipped", 0.0))
                continue
            step = _run(f"pre-commit: {hook_id}", [*cmd, *hook.get("args", []), *selected], zoo)
            step.command = f"{hook_id} {' '.join(hook.get('args', []))} <{len(selected)} files>"
            steps.append(step)
    return steps


def absolute_command(command: str) -> str:
    """``command`` as an absolute path (found on the PATH, or relative to the working directory), since the checks
    run in the scratch folder; symbolic links are kept (a virtual environment's python is one)."""
    found = shutil.which(command)
    return os.path.abspath(found) if found else command


def _writable(path: Path) -> None:
    """Give the owner write permission on ``path`` and everything under it (shared/ is read-only)."""
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def run_zoo_ci(
    zoo_dir: str | Path,
    work: str | Path,
    tools_python: str = sys.executable,
    pytype: bool = False,
    weights_url: str | None = None,
) -> list[Step]:
    """Build the package in a scratch copy of ``zoo_dir`` under ``work`` and run the zoo's checks on it.

    Args:
        zoo_dir: the zoo's CI files (``ci/``, ``setup.cfg``, ``.pre-commit-config.yaml``, ``schema/``, ...).
        work: an empty scratch folder.
        tools_python: the interpreter with isort, black, flake8 (and plugins), pre-commit-hooks and identify.
        pytype: also run pytype (minutes on two cores).
        weights_url: passed to ``tools/zoo_package.py``.

    Returns:
        The steps in the order run.
    """
    work = Path(work)
    tools_python = absolute_command(tools_python)
    zoo = work / "zoo"
    shutil.copytree(zoo_dir, zoo, symlinks=True)
    _writable(zoo)
    git = ["git", "-c", "user.name=zoo-ci", "-c", "user.email=zoo-ci@localhost", "-c", "commit.gpgsign=false"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "zoo CI files"]):
        subprocess.run([*git, *cmd], cwd=zoo, check=True, capture_output=True)
    name = bundle_name_of(json.loads((ROOT / "configs" / "metadata.json").read_text()))
    package = f"models/{name}"
    test_file = unit_test_path("", name).as_posix()
    py = sys.executable

    build = [py, str(ROOT / "tools" / "zoo_package.py"), str(zoo)] + (
        ["--weights_url", weights_url] if weights_url else []
    )
    steps = [_run("build: tools/zoo_package.py", build, ROOT)]
    if steps[-1].status == "failed":
        return steps
    subprocess.run([*git, "add", package, test_file], cwd=zoo, check=True)  # "added" files, as in a pull request
    files = subprocess.run(
        [*git, "diff", "--staged", "--name-only"], cwd=zoo, check=True, capture_output=True, text=True
    )
    added = files.stdout.split()

    code = [package, test_file]
    steps.append(_run("format: isort --check", [tools_python, "-m", "isort", "--check", "--diff", *code], zoo))
    black = [tools_python, "-m", "black", "--skip-magic-trailing-comma", "--check", "--diff", *code]
    steps.append(_run("format: black --skip-magic-trailing-comma --check", black, zoo))
    steps.append(_run("format: flake8", [tools_python, "-m", "flake8", "--count", "--statistics", *code], zoo))
    if pytype:
        version = subprocess.run(
            [tools_python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        pytype_cmd = [tools_python, "-m", "pytype", "-j", "2", f"--python-version={version}", *code]
        steps.append(_run("format: pytype", pytype_cmd, zoo))

    steps += _pre_commit(zoo, added, tools_python)
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--", package, test_file], cwd=zoo, capture_output=True, text=True
    )
    modified = [line[3:] for line in changed.stdout.splitlines() if line[:2].strip() not in ("A", "")]
    steps.append(
        Step(
            "pre-commit: no file changed by a fixer",
            "git status --porcelain",
            "failed" if modified else "passed",
            0.0,
            "\n".join(modified),
        )
    )

    rc_env = {"ALLOW_MONAI_RC": "true"}
    steps.append(
        _run(
            "requirements: ci/get_bundle_requirements.py",
            [py, "ci/get_bundle_requirements.py", "--b", name],
            zoo,
            rc_env,
        )
    )
    requirements = zoo / f"requirements_{name}.txt"
    python310 = find_python310()
    if steps[-1].status == "failed" or not requirements.is_file():
        steps.append(Step("requirements: pip install on Python 3.10", "", "skipped", 0.0, "no requirements file"))
    elif python310 is None:
        steps.append(Step("requirements: pip install on Python 3.10", "", "skipped", 0.0, "no Python 3.10 found"))
    else:
        cmd310, env310 = python310
        venv = work / "venv310"
        step = _run("requirements: Python 3.10 venv", [*cmd310, "-m", "venv", str(venv)], zoo, env310)
        if step.status == "failed":
            steps.append(step)
        else:
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--pre", "-r", requirements.name]
            steps.append(_run("requirements: pip install --dry-run --pre on Python 3.10", pip, zoo))

    with open(ROOT / "configs" / "metadata.json") as f:
        schema_name = json.load(f)["schema"].split("/")[-1]
    shutil.copyfile(zoo / SCHEMA_SOURCE / schema_name, zoo / "models" / schema_name)  # what the download writes
    steps.append(_run("verify: ci/prepare_schema.py", [py, "ci/prepare_schema.py", "--l", name], zoo))
    for weight in WEIGHTS:  # what download_large_files writes (both modes); it then finds the md5 and skips it
        (zoo / package / weight).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / weight, zoo / package / weight)
    steps.append(_run("verify: ci/verify_bundle.py -m min", [py, "ci/verify_bundle.py", "-b", name, "-m", "min"], zoo))
    steps.append(
        _run("verify: ci/verify_bundle.py -m full", [py, "ci/verify_bundle.py", "-b", name, "-m", "full"], zoo)
    )

    runner = _run("unit test: ci/unit_tests/runner.py --b", [py, "ci/unit_tests/runner.py", "--b", name], zoo)
    if runner.status == "passed" and not re.search(r"^Ran [1-9]\d* tests? in .*\n\s*\nOK", runner.output, re.M):
        runner.status = "failed"  # the runner exits 0 when it finds no test file
    steps.append(runner)
    return steps


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the zoo's CI, print a line per step (and the output of failed ones); 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo_dir", help="the zoo's CI files, e.g. ../shared/model-zoo")
    parser.add_argument("--tools_python", default=sys.executable, help="interpreter with the zoo's format tools")
    parser.add_argument("--work", help="scratch folder, kept (default: a temporary one, removed)")
    parser.add_argument("--pytype", action="store_true", help="also run pytype (slow)")
    parser.add_argument("--weights_url", help="passed to tools/zoo_package.py")
    args = parser.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="zoo_ci_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        steps = run_zoo_ci(args.zoo_dir, work, args.tools_python, args.pytype, args.weights_url)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    for step in steps:
        print(f"{step.status:8s} {step.seconds:6.1f} s  {step.name}   [{step.command}]")
        if step.status == "failed":
            print("\n".join("    " + line for line in step.output.splitlines()[-TAIL_LINES:]))
    counts = {s: sum(step.status == s for step in steps) for s in ("passed", "failed", "skipped")}
    print(f"zoo: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
