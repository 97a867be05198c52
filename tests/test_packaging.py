"""The installed distribution: a name of its own on PyPI (`phenom` is an unrelated project), and no declared
dependency that nothing uses (`evaluate` was one)."""

import ast
import importlib.metadata
import re

from conftest import REPO_ROOT
from packaging.requirements import Requirement

from eval.results import package_versions, phenom_distribution

PACKAGES = ("modeling_phenom", "phenom_data", "train", "eval", "hub_cards", "phenom")
# Declared dependencies that no module of ours imports, and what uses them instead.
USED_WITHOUT_IMPORT = {"tensorboard": "accelerate's tracker, named in train/configs (`trackers: [tensorboard]`)"}


def pyproject_name() -> str:
    return re.search(r'^name = "([^"]+)"$', (REPO_ROOT / "pyproject.toml").read_text(), flags=re.M).group(1)


def imported_top_level_modules() -> set[str]:
    """Every absolute import in the installed packages (relative imports are our own modules)."""
    modules = set()
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return modules


def test_the_installed_distribution_is_not_named_phenom_and_results_record_its_version():
    name = pyproject_name()
    assert name == phenom_distribution() == "phenom-microscopy"
    assert importlib.metadata.metadata(name)["Name"] == name
    assert package_versions()[name] == importlib.metadata.version(name)
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"`{name}`" in readme and "pip install -e ." in readme


def test_every_declared_dependency_is_imported_and_evaluate_is_gone():
    requirements = [Requirement(line) for line in importlib.metadata.requires(phenom_distribution())]
    dependencies = {requirement.name for requirement in requirements if requirement.marker is None}
    provided = {}  # distribution -> the import names it installs
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            provided.setdefault(distribution.lower().replace("_", "-"), set()).add(module)
    imported = imported_top_level_modules()
    idle = sorted(name for name in dependencies - set(USED_WITHOUT_IMPORT)
                  if not provided.get(name.lower().replace("_", "-"), set()) & imported)
    assert not idle, f"declared but never imported: {idle}"
    assert "evaluate" not in dependencies and "evaluate" not in imported
    for config in (REPO_ROOT / "train" / "configs").glob("*.yaml"):
        assert "trackers: [tensorboard]" in config.read_text(), config
