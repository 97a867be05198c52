"""The README's Python snippets run as written; `.ci/run` runs exactly the README test command; `phenom --help`."""

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
SKIP_MARK = "<!-- not executed by the tests:"


def python_blocks():
    """Each ```python block, unless the line before it is a SKIP_MARK comment (it needs the Hub or a GPU)."""
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", README, flags=re.S):
        preceding = README[: match.start()].rstrip().splitlines()[-1] if match.start() else ""
        if not preceding.startswith(SKIP_MARK):
            blocks.append(match.group(1))
    return blocks


def test_readme_has_python_snippets():
    assert python_blocks()


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_snippet_runs(index, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(python_blocks()[index])
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
