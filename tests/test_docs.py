"""The documentation describes the project as it is: one version in pyproject and CHANGELOG, no work-period or
work-item numbers in what users read, and every config key documented in config/README.md."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# "session 9", "issues 15-20", "issue-20", "sprint 3", "work item 4", "ticket 7", and GitHub-style "#17".
WORK_NUMBER = re.compile(
    r"\b(?:sessions?|issues?|sprints?|work[ -]items?|tickets?)[ -]?#?\d|(?<![\w&/#])#\d+\b", re.IGNORECASE)
TEXT_SUFFIXES = {".md", ".py", ".smk", ".yaml", ".yml", ".txt", ".toml", ""}


def changelog_top_version() -> str:
    for line in (ROOT / "CHANGELOG.md").read_text().splitlines():
        match = re.match(r"## \[(\d+\.\d+\.\d+)\]", line)
        if match:
            return match.group(1)
    raise AssertionError("CHANGELOG.md has no '## [x.y.z]' version heading")


def test_pyproject_version_is_the_changelogs_top_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == changelog_top_version()


def project_text_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "Snakefile"]
    for folder in ("docs", "src", "workflow", "config"):
        files += [path for path in sorted((ROOT / folder).rglob("*"))
                  if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts]
    return files


@pytest.mark.parametrize("text, found", [
    ("as issue 20 asks", True), ("Session 9 measured", True), ("issues 15-20", True), ("an issue-20 lever", True),
    ("see #17", True), ("work item 3", True), ("Sprint 2", True),
    ("start_new_session=True", False), ('$ref: "#/definitions/fraction"', False), ("two issues remain", False),
    ("colour &#38;", False), ("p_a#0", False),
])
def test_work_number_pattern(text, found):
    assert bool(WORK_NUMBER.search(text)) == found


def test_no_work_period_or_work_item_numbers():
    hits = []
    for path in project_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if WORK_NUMBER.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not hits, "work-period or work-item numbers (say what is, not when):\n" + "\n".join(hits)


def leaf_keys(values: dict, schema: dict, prefix: str = "") -> list[str]:
    """Dotted paths of config/config.yaml's leaves. A mapping whose schema lists its properties is a section and is
    walked; any other value (a number, a list, a free-form mapping such as `table5.names`) is a leaf."""
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        sub = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and "properties" in sub:
            keys += leaf_keys(value, sub, f"{path}.")
        else:
            keys.append(path)
    return keys


def test_every_config_key_is_documented_in_config_readme():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    readme = (ROOT / "config" / "README.md").read_text()
    keys = leaf_keys(config, schema)
    assert "train.steps" in keys and "table5.names" in keys and "synthetic.seed" in keys
    missing = [key for key in keys if f"`{key}`" not in readme]
    assert not missing, f"config/README.md does not document {missing} (write each as `section.key`)"
