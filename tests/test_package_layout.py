"""The layout map of docs/design.md ("Layout: packages and who may import whom") holds in the code: each package
imports only the packages below it, and only the command layer (`phenom/`) parses argv or exits. The sources are read
with `ast` (nothing is imported), so imports inside functions count as much as those at the top of a module."""

import ast
from pathlib import Path

import pytest
from conftest import REPO_ROOT

# package -> the packages of ours it may import (docs/design.md; DESIGN §2: modeling_phenom <- phenom_data <- train,
# eval <- hub_cards <- phenom). train and eval meet through files, never imports.
MAY_IMPORT = {
    "modeling_phenom": set(),
    "phenom_data": {"modeling_phenom"},
    "train": {"modeling_phenom", "phenom_data"},
    "eval": {"modeling_phenom", "phenom_data"},
    "hub_cards": {"modeling_phenom", "phenom_data", "train", "eval"},
    "phenom": {"modeling_phenom", "phenom_data", "train", "eval", "hub_cards"},
    "bench": {"modeling_phenom", "phenom_data", "train", "eval", "hub_cards"},
}
COMMAND_LAYER = "phenom"
# Benchmarks are scripts run from a checkout (`python -m bench.<name>`), not installed and imported by nothing:
# their argparse `main` is their entry point.
SCRIPTS = "bench"
# `accelerate launch train/pretrain.py ...` (DESIGN §5) runs the file as a script: its `if __name__ == "__main__":`
# guard may hand over to the command layer (import from `phenom`, exit with its status), and do nothing else.
MAIN_GUARD_HANDOVER = {"train/pretrain.py"}
# Modules that still parse argv or exit until the other parts of issue 25 (eval, rest, config) move their commands to
# `phenom/commands/`; the lead removes each one as it lands (a listed module that is clean or gone fails below).
NOT_YET_COMMANDS: set[str] = set()
EXIT_CALLS = {("sys", "exit"), ("os", "_exit"), (None, "exit"), (None, "quit")}


def modules() -> list[Path]:
    return sorted(path for package in MAY_IMPORT for path in (REPO_ROOT / package).rglob("*.py"))


def name_of(path: Path, root: Path = REPO_ROOT) -> str:
    return path.relative_to(root).as_posix()


def is_main_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and any(isinstance(value, ast.Constant) and value.value == "__main__"
                                                   for value in test.comparators))


def imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def is_exit(node: ast.AST) -> bool:
    if isinstance(node, ast.Raise) and node.exc is not None:
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(raised, ast.Name) and raised.id == "SystemExit"
    if isinstance(node, ast.Call):
        function = node.func
        if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
            return (function.value.id, function.attr) in EXIT_CALLS
        return isinstance(function, ast.Name) and (None, function.id) in EXIT_CALLS
    return False


def problems(path: Path, root: Path = REPO_ROOT) -> tuple[list[str], list[str]]:
    """(imports of packages this module's package may not import, argv parsing and exits), each as `line: what`."""
    package = name_of(path, root).split("/")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    guard = set()
    if name_of(path, root) in MAIN_GUARD_HANDOVER:
        guard = {id(node) for statement in tree.body if is_main_guard(statement) for node in ast.walk(statement)}
    wrong_imports, commands = [], []
    for node in sorted(ast.walk(tree), key=lambda node: getattr(node, "lineno", 0)):
        in_guard = id(node) in guard
        for module in imported_modules(node):
            top = module.split(".")[0]
            if top == "argparse":
                commands.append(f"{node.lineno}: import argparse")
            elif top in MAY_IMPORT and top != package and top not in MAY_IMPORT[package]:
                if not (in_guard and top == COMMAND_LAYER):
                    wrong_imports.append(f"{node.lineno}: {package} imports {module}")
        if is_exit(node) and not in_guard:
            commands.append(f"{node.lineno}: exits ({ast.unparse(node)[:60]})")
    return wrong_imports, commands


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_packages_import_only_the_packages_below_them(path):
    wrong_imports, _ = problems(path)
    assert not wrong_imports, f"{name_of(path)} breaks the layout of docs/design.md: {wrong_imports}"


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_only_the_command_layer_parses_argv_or_exits(path):
    name, (_, commands) = name_of(path), problems(path)
    if name.startswith((f"{COMMAND_LAYER}/", f"{SCRIPTS}/")):
        return
    if name in NOT_YET_COMMANDS:
        assert commands, f"{name} no longer parses argv or exits: remove it from NOT_YET_COMMANDS"
        return
    assert not commands, (f"{name} is library code: a typed function that raises, with its argparse `main` in "
                          f"{COMMAND_LAYER}/commands/ (STYLE rule 16); found {commands}")


def test_every_module_still_to_convert_exists():
    missing = sorted(name for name in NOT_YET_COMMANDS if not (REPO_ROOT / name).is_file())
    assert not missing, f"moved or removed: take {missing} out of NOT_YET_COMMANDS"


def test_the_checker_sees_lazy_imports_exits_and_the_main_guard(tmp_path):
    """The two rules above cannot pass vacuously: a lazy import, `raise SystemExit` and `sys.exit` are caught, and
    only pretrain's guard may hand over to the command layer."""
    source = ("def f():\n    import argparse\n    from hub_cards import card\n    raise SystemExit(2)\n"
              "if __name__ == '__main__':\n    from phenom.cli import main\n    sys.exit(main())\n")
    for name, guard_allowed in (("eval/x.py", False), ("train/pretrain.py", True)):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        wrong_imports, commands = problems(path, tmp_path)
        assert [line.split(":")[0] for line in commands] == (["2", "4"] if guard_allowed else ["2", "4", "7"])
        assert len(wrong_imports) == (1 if guard_allowed else 2)

