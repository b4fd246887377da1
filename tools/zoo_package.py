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
"""The bundle in the MONAI model zoo's form: ``ZOO_ROOT/models/<bundle_name>/`` and its zoo unit test.

Usage, from anywhere (ZOO_ROOT is a checkout of Project-MONAI/model-zoo, or an empty folder)::

    python tools/zoo_package.py ZOO_ROOT [--weights_url URL] [--bundle_name NAME] [--repo_url URL] [--fix_json]

Writes what a zoo bundle holds and nothing else: ``configs/`` (less the offline schema copy), ``scripts/*.py``,
``docs/README.md`` with the figures it shows, ``docs/data_license.txt``, ``LICENSE`` and ``large_files.yml``, which
lists ``models/model.pt`` and ``models/model.ts`` with the md5 of this repository's files and the URL where the
release publishes them (``--weights_url``, default ``REPO_URL/releases/download/v<version>``): the zoo refuses
files over 1 MB, so the weights stay out. Links of the model card to files that do not ship point to the
repository at tag ``v<version>``. ``ZOO_ROOT/ci/unit_tests/test_<bundle_name>.py`` (from
``tools/zoo_unit_test_template.py``) trains, evaluates and infers briefly on the synthetic demo, the way the zoo's
``ci/unit_tests/runner.py --b <bundle_name>`` runs a bundle's own test. The package is then checked for what can
be checked without the zoo's files (:func:`check_package`); ``tools/zoo_ci.py`` runs the zoo's own CI on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

__all__ = [
    "REPO_URL",
    "WEIGHTS",
    "MAX_FILE_BYTES",
    "bundle_name_of",
    "build_package",
    "card_for_zoo",
    "check_package",
    "large_files_yaml",
    "main",
    "md5_of",
    "package_sources",
    "pretty_json",
    "unit_test_path",
]

ROOT = Path(__file__).resolve().parents[1]
REPO_URL = "https://github.com/jcas-bundle/jcas_noisy_label_segmentation"  # the project; weights on its releases
WEIGHTS = ("models/model.pt", "models/model.ts")  # listed in large_files.yml, never copied
MAX_FILE_BYTES = 1024 * 1024  # the zoo's pre-commit: check-added-large-files --maxkb=1024 (rounds up to whole KB)
MAX_CHANGELOG_CHARS = 160  # one line of the zoo's model browser
CONFIG_EXCLUDE = ("metadata_schema.json",)  # the offline schema copy: the zoo's CI provides eval/schema.json
TEMPLATE = Path(__file__).with_name("zoo_unit_test_template.py")
TOP_LEVEL = ("LICENSE", "configs", "docs", "large_files.yml", "scripts")  # all a package may hold at its root
REQUIRED = ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md", "docs/data_license.txt")
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")
BINARY_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif")

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_INLINE = re.compile(r"(!?)\[([^\[\]]*)\]\(\s*(<[^>]+>|[^)\s]+)(\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^( {0,3}\[[^\]]+\]:[ \t]*)(\S+)", re.M)
_IMG_TAG = re.compile(r"(<img\b[^>]*?\bsrc=[\"'])([^\"']+)([\"'])", re.I)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def bundle_name_of(metadata: Mapping) -> str:
    """The zoo's folder name from metadata's display ``name``: lower case, runs of other characters as ``_``."""
    name = re.sub(r"[^a-z0-9]+", "_", str(metadata.get("name", "")).lower()).strip("_")
    if not name:
        raise ValueError("configs/metadata.json: expected a non-empty 'name' to name the zoo bundle")
    return name


def md5_of(path: str | Path) -> str:
    """The md5 hex digest of the file at ``path`` (the hash type the zoo's large_files.yml examples use)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pretty_json(text: str) -> str:
    """``text`` as the zoo's pre-commit writes it: ``pretty-format-json --autofix --no-sort-keys --indent=4``
    (``json.dumps`` with indent 4, ASCII escapes, keys in their order, one final newline)."""
    return json.dumps(json.loads(text), indent=4) + "\n"


def unit_test_path(zoo_root: str | Path, bundle_name: str) -> Path:
    """Where the zoo's runner looks for a bundle's own test: ``ci/unit_tests/test_<bundle_name>.py``."""
    return Path(zoo_root) / "ci" / "unit_tests" / f"test_{bundle_name}.py"


def _tracked(root: Path) -> set[str] | None:
    """The files git tracks under ``root`` (so that local, uncommitted files do not ship), or None outside git."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(out.stdout.split("\0")) - {""}


def package_sources(root: str | Path = ROOT) -> dict[str, Path]:
    """Files copied as they are, by their path in the package: configs and scripts (subfolders too, only files git
    tracks where ``root`` is a git work tree), the licences.

    The model card and its figures come from :func:`card_for_zoo`, ``large_files.yml`` from
    :func:`large_files_yaml`.

    Raises:
        FileNotFoundError: a required source file is missing.
    """
    root = Path(root)
    sources = {"LICENSE": root / "LICENSE", "docs/data_license.txt": root / "docs" / "data_license.txt"}
    found = [*(root / "configs").rglob("*"), *(root / "scripts").rglob("*.py")]
    tracked = _tracked(root)
    for path in sorted(p for p in found if p.is_file() and "__pycache__" not in p.parts):
        rel = path.relative_to(root).as_posix()
        if path.name not in CONFIG_EXCLUDE and (tracked is None or rel in tracked):
            sources[rel] = path
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"the zoo package needs {', '.join(missing)}")
    return sources


def card_for_zoo(
    text: str, shipped: Iterable[str], version: str, repo_url: str = REPO_URL, root: str | Path = ROOT
) -> tuple[str, list[str], list[str]]:
    """The model card ``docs/README.md`` as it ships, the figures it shows, and its broken links.

    Relative links and images resolve from ``docs/``. A link to a file that ships stays; an image
    (``![alt](path)`` or ``<img src>``) of the repository ships with the card at the same path; any other
    repository file or folder is linked at ``repo_url`` and tag ``v<version>``. Absolute URLs, anchors and fenced
    code blocks are left as they are.

    Args:
        text: the card's Markdown.
        shipped: package paths (``configs/train.json``, ...) that ship anyway.
        version: the bundle version, whose release tag is ``v<version>``.
        repo_url: the project's repository.
        root: the repository root.

    Returns:
        (card text, package paths of its figures, broken links as ``target: reason``).
    """
    root = Path(root).resolve()
    shipped = set(shipped) | {"docs/README.md"}
    figures: list[str] = []
    broken: list[str] = []

    def resolve(target: str, image: bool) -> str:
        bare = target[1:-1] if target.startswith("<") and target.endswith(">") else target
        if not bare or bare.startswith("#") or _SCHEME.match(bare) or bare.startswith("//"):
            return target
        path_part, hash_mark, fragment = bare.partition("#")
        source = (root / "docs" / path_part).resolve()
        if not source.is_relative_to(root) or not source.exists():
            broken.append(f"{target}: no such file in the repository")
            return target
        rel = source.relative_to(root).as_posix()
        if rel in shipped:
            return target
        if image and source.is_file() and source.suffix.lower() in FIGURE_SUFFIXES:
            if rel not in figures:
                figures.append(rel)
            return target
        kind = "tree" if source.is_dir() else "blob"
        return f"{repo_url}/{kind}/v{version}/{rel}{hash_mark}{fragment}"

    def inline(match: re.Match) -> str:
        bang, label, target, title = match.groups()
        return f"{bang}[{label}]({resolve(target, bool(bang))}{title or ''})"

    def rewrite(prose: str) -> str:
        prose = _INLINE.sub(inline, prose)
        prose = _REFERENCE.sub(lambda m: m.group(1) + resolve(m.group(2), False), prose)
        return _IMG_TAG.sub(lambda m: m.group(1) + resolve(m.group(2), True) + m.group(3), prose)

    pieces, start = [], 0
    for fence in _FENCE.finditer(text):
        pieces += [rewrite(text[start : fence.start()]), fence.group(0)]
        start = fence.end()
    pieces.append(rewrite(text[start:]))
    return "".join(pieces), figures, broken


def large_files_yaml(entries: Sequence[tuple[str, str, str]]) -> str:
    """``large_files.yml`` in the zoo's form (see its spleen_ct_segmentation) from (path, url, md5) entries."""
    lines = ["large_files:"]
    for path, url, md5 in entries:
        lines += [f'- path: "{path}"', f'  url: "{url}"', f'  hash_val: "{md5}"', '  hash_type: "md5"']
    return "\n".join(lines) + "\n"


def _render_unit_test(bundle_name: str) -> str:
    """The zoo unit test for ``bundle_name`` from the template (its ``BUNDLE = "..."`` line replaced)."""
    text, count = re.subn(r'^BUNDLE = ".*"$', f'BUNDLE = "{bundle_name}"', TEMPLATE.read_text(), flags=re.M)
    if count != 1:
        raise ValueError(f"{TEMPLATE}: expected one 'BUNDLE = \"...\"' line, found {count}")
    return text


def _fix_json(root: Path) -> list[str]:
    """Rewrite the repository's configs/**/*.json in :func:`pretty_json` form; return those that changed."""
    changed = []
    for path in sorted((root / "configs").rglob("*.json")):
        text = path.read_text(encoding="utf-8")
        if pretty_json(text) != text:
            path.write_text(pretty_json(text), encoding="utf-8")
            changed.append(str(path.relative_to(root)))
    return changed


def build_package(
    zoo_root: str | Path,
    weights_url: str | None = None,
    bundle_name: str | None = None,
    repo_url: str = REPO_URL,
    root: str | Path = ROOT,
) -> Path:
    """Write the zoo package ``zoo_root/models/<bundle_name>/`` (replacing an earlier one) and its unit test.

    Args:
        zoo_root: the zoo checkout (or any folder) to write into.
        weights_url: the folder URL where the release publishes ``model.pt`` and ``model.ts``; default
            ``<repo_url>/releases/download/v<version>``.
        bundle_name: the zoo folder name; default :func:`bundle_name_of` metadata.
        repo_url: the project's repository, for the card's links to files that do not ship.
        root: the repository root (the bundle root).

    Returns:
        The package folder.

    Raises:
        FileNotFoundError: a file the package needs is missing (the weights included: their md5 is listed).
        ValueError: the model card has a broken link.
    """
    root = Path(root)
    metadata = json.loads((root / "configs" / "metadata.json").read_text(encoding="utf-8"))
    name = bundle_name or bundle_name_of(metadata)
    version = str(metadata["version"])
    weights_url = (weights_url or f"{repo_url}/releases/download/v{version}").rstrip("/")
    sources = package_sources(root)
    missing = [w for w in WEIGHTS if not (root / w).is_file()]
    if missing:
        raise FileNotFoundError(f"large_files.yml lists the md5 of {', '.join(missing)}, missing in {root}")
    card, figures, broken = card_for_zoo(
        (root / "docs" / "README.md").read_text(encoding="utf-8"), sources, version, repo_url, root
    )
    if broken:
        raise ValueError("docs/README.md has broken links: " + "; ".join(broken))

    dest = Path(zoo_root) / "models" / name
    if dest.exists():
        shutil.rmtree(dest)
    for rel, source in [*sources.items(), *((fig, root / fig) for fig in figures)]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest / rel)  # contents only: no executable bits
    (dest / "docs" / "README.md").write_text(card, encoding="utf-8")
    entries = [(w, f"{weights_url}/{Path(w).name}", md5_of(root / w)) for w in WEIGHTS]
    (dest / "large_files.yml").write_text(large_files_yaml(entries), encoding="utf-8")
    test_file = unit_test_path(zoo_root, name)
    test_file.parent.mkdir(parents=True, exist_ok=True)
    test_file.write_text(_render_unit_test(name), encoding="utf-8")
    return dest


def _text_problems(rel: str, data: bytes) -> list[str]:
    """What the zoo's end-of-file-fixer, mixed-line-ending and trailing-whitespace hooks would change."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [f"{rel}: not UTF-8 text"]
    problems = []
    if text and (not text.endswith("\n") or text.endswith("\n\n")):
        problems.append(f"{rel}: expected exactly one final newline (end-of-file-fixer)")
    if "\r" in text:
        problems.append(f"{rel}: expected LF line endings only (mixed-line-ending)")
    trailing = [i for i, line in enumerate(text.split("\n"), 1) if line != line.rstrip()]
    if trailing:
        problems.append(f"{rel}: trailing whitespace on lines {trailing[:5]} (trailing-whitespace)")
    return problems


def check_package(zoo_root: str | Path, bundle_name: str, root: str | Path = ROOT) -> list[str]:
    """What the zoo's CI would refuse in the package, found without the zoo's files; empty when all is well.

    Checks: the package holds exactly the sources, the card's figures and ``large_files.yml`` (no weights, no
    caches); every file at most :data:`MAX_FILE_BYTES` and not executable; ``large_files.yml`` lists
    :data:`WEIGHTS` with the md5 of the repository's files; JSON in :func:`pretty_json` form; text files with LF
    line endings, no trailing whitespace and one final newline; a one-line changelog entry per version, the
    current one included; the unit test file present and valid Python.

    Args:
        zoo_root: the folder given to :func:`build_package`.
        bundle_name: the package's folder name.
        root: the repository root the package was built from.

    Returns:
        One message per problem, naming the file.
    """
    root = Path(root)
    dest = Path(zoo_root) / "models" / bundle_name
    if not dest.is_dir():
        return [f"{dest}: no package folder"]
    problems = []
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    expected = set(package_sources(root)) | {"docs/README.md", "large_files.yml"}
    for rel in files:
        if rel.split("/")[0] not in TOP_LEVEL:
            problems.append(f"{rel}: a zoo bundle holds only {', '.join(TOP_LEVEL)} at its root")
        elif rel not in expected and not (rel.startswith("docs/") and rel.lower().endswith(FIGURE_SUFFIXES)):
            problems.append(f"{rel}: not a file of the bundle")
    problems += [f"{rel}: missing" for rel in sorted(set(REQUIRED) | expected) if rel not in files]

    for rel in files:
        path = dest / rel
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            problems.append(f"{rel}: {size} bytes, over the zoo's limit of {MAX_FILE_BYTES} (check-added-large-files)")
        if path.stat().st_mode & 0o111:
            problems.append(f"{rel}: executable (check-executables-have-shebangs); write it without the x bits")
        if rel.lower().endswith(BINARY_SUFFIXES):
            continue
        data = path.read_bytes()
        problems += _text_problems(rel, data)
        if rel.endswith(".json"):
            try:
                if pretty_json(data.decode("utf-8")) != data.decode("utf-8"):
                    problems.append(
                        f"{rel}: not in pretty-format-json --indent=4 --no-sort-keys form; "
                        "rewrite with python tools/zoo_package.py ZOO_ROOT --fix_json"
                    )
            except ValueError as err:
                problems.append(f"{rel}: invalid JSON ({err})")

    if (dest / "large_files.yml").is_file():
        listed = yaml.safe_load((dest / "large_files.yml").read_text()).get("large_files") or []
        if [entry.get("path") for entry in listed] != list(WEIGHTS):
            problems.append(
                f"large_files.yml: expected the paths {list(WEIGHTS)}, got {[e.get('path') for e in listed]}"
            )
        for entry in listed:
            weight = root / str(entry.get("path"))
            if entry.get("hash_type") != "md5" or not str(entry.get("url", "")).startswith(("https://", "http://")):
                problems.append(f"large_files.yml: {entry.get('path')}: expected an http(s) url and hash_type md5")
            if weight.is_file() and entry.get("hash_val") != md5_of(weight):
                problems.append(f"large_files.yml: {entry.get('path')}: hash_val is not the md5 of {weight}")

    if (dest / "configs" / "metadata.json").is_file():
        metadata = json.loads((dest / "configs" / "metadata.json").read_text(encoding="utf-8"))
        changelog = metadata.get("changelog", {})
        if metadata.get("version") not in changelog:
            problems.append(f"configs/metadata.json: version {metadata.get('version')} has no changelog entry")
        for version, entry in changelog.items():
            if "\n" in entry or len(entry) > MAX_CHANGELOG_CHARS:
                problems.append(
                    f"configs/metadata.json: changelog {version}: expected one line of at most "
                    f"{MAX_CHANGELOG_CHARS} characters, got {len(entry)}"
                )

    test_file = unit_test_path(zoo_root, bundle_name)
    if not test_file.is_file():
        problems.append(f"{test_file}: missing (the zoo's runner would skip the bundle's tests)")
    else:
        try:
            compile(test_file.read_text(encoding="utf-8"), str(test_file), "exec")
        except SyntaxError as err:
            problems.append(f"{test_file}: invalid Python ({err})")
        problems += _text_problems(test_file.name, test_file.read_bytes())
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the package, check it, print what was written; 1 if a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo_root", help="the model zoo checkout (or any folder) to write models/<name>/ into")
    parser.add_argument("--weights_url", help="folder URL of the release's model.pt and model.ts")
    parser.add_argument("--bundle_name", help="the zoo folder name (default: from metadata's name)")
    parser.add_argument("--repo_url", default=REPO_URL, help="the project's repository (default: %(default)s)")
    parser.add_argument("--fix_json", action="store_true", help="first rewrite configs/*.json in the zoo's form")
    args = parser.parse_args(argv)
    if args.fix_json:
        for rel in _fix_json(ROOT):
            print(f"rewrote {rel}")
    try:
        dest = build_package(args.zoo_root, args.weights_url, args.bundle_name, args.repo_url)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    name = dest.name
    sizes = sorted((p.stat().st_size, p.relative_to(dest).as_posix()) for p in dest.rglob("*") if p.is_file())
    print(f"wrote {dest} ({len(sizes)} files, {sum(s for s, _ in sizes) / 1e6:.2f} MB; largest {sizes[-1][1]})")
    print(f"wrote {unit_test_path(args.zoo_root, name)}")
    problems = check_package(args.zoo_root, name)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
