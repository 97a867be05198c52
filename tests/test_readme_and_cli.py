"""The Python snippets of the README and docs/ run as written; the README is short and docs/index.md lists every
document; `.ci/run` runs exactly the README test command; `phenom --help`."""

import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
SKIP_MARK = "<!-- not executed by the tests:"
# The README and every document under docs/: their snippets are part of what users copy.
DOCUMENTS = ["README.md", *sorted(str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "docs").glob("*.md"))]


def python_blocks(text: str) -> list[str]:
    """Each ```python block of `text`, unless the line before it is a SKIP_MARK comment (it needs the Hub or a
    GPU)."""
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", text, flags=re.S):
        preceding = text[: match.start()].rstrip().splitlines()[-1] if match.start() else ""
        if not preceding.strip().startswith(SKIP_MARK):
            blocks.append(textwrap.dedent(match.group(1)))  # a block inside a list item is indented
    return blocks


SNIPPETS = [(name, index) for name in DOCUMENTS
            for index in range(len(python_blocks((REPO_ROOT / name).read_text())))]


def test_readme_has_python_snippets():
    assert python_blocks(README)


def test_readme_is_short_with_the_demo_and_test_commands_first():
    lines = README.splitlines()
    assert len(lines) < 220
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[:2] == ["## Quick start", "## Test"]
    assert "phenom demo" in README.split("## Test", 1)[0]


def test_every_document_linked_from_the_docs_index_exists_and_every_document_is_listed():
    index = (REPO_ROOT / "docs" / "index.md").read_text()
    linked = set(re.findall(r"\]\(([^)#]+\.md)\)", index))
    documents = {path.name for path in (REPO_ROOT / "docs").glob("*.md")} - {"index.md"}
    assert linked == documents


@pytest.mark.parametrize(("name", "index"), SNIPPETS, ids=[f"{name}-{index}" for name, index in SNIPPETS])
def test_documented_python_snippet_runs(name, index, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(python_blocks((REPO_ROOT / name).read_text())[index])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def readme_test_command():
    section = README.split("## Test", 1)[1]
    return re.search(r"```bash\n(.*?)\n```", section, flags=re.S).group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    assert readme_test_command() in ci_lines
    # torch's CPU build is installed before the project, so the project's range does not pull a CUDA build.
    assert ci_lines.index("pip install --quiet torch==2.13.0") < ci_lines.index(readme_test_command())


def test_phenom_help_lists_the_subcommands_that_exist():
    from phenom.cli import SUBCOMMANDS

    result = subprocess.run([sys.executable, "-m", "phenom", "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\s", result.stdout, flags=re.M), name


def test_unknown_subcommand_is_an_error():
    result = subprocess.run([sys.executable, "-m", "phenom", "frobnicate"], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr
