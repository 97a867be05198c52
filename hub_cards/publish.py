"""Push a card to the Hugging Face Hub with `huggingface_hub` (`create_repo`, `upload_file`, `metadata_update`).

A push is a list of `HubOperation`s (a `huggingface_hub` function and its keyword arguments) planned before anything
runs; `--dry-run` prints exactly that list and `execute` runs exactly that list, so the dry run shows what a push
does. Two modes:

- default: `create_repo(exist_ok=True)`, then `upload_file` for the model files (with `--upload-model`), the results
  copies and, last, `README.md` (the card replaces the repo's README);
- `--metadata-only`: `metadata_update(overwrite=True)` merges the card's front matter and model-index into the repo's
  existing README (its prose stays), optionally as a pull request, plus `upload_file` for the results copies.

Credentials are checked before any work: no token (`HF_TOKEN` or `hf auth login`) or `HF_HUB_OFFLINE=1` is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMMIT_PREFIX = "phenom card"


class PublishError(RuntimeError):
    """A push that cannot start or that the Hub refused (the message names the operation)."""


@dataclass(frozen=True)
class HubOperation:
    """One call `huggingface_hub.<function>(**kwargs, token=...)`."""

    function: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The call as Python source, without the token (what `--dry-run` prints)."""
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.kwargs.items())
        return f"huggingface_hub.{self.function}({arguments})"

    def run(self, token: str):
        import huggingface_hub

        return getattr(huggingface_hub, self.function)(**self.kwargs, token=token)


def require_push_credentials() -> str:
    """The Hub token, or a `PublishError` saying how to provide one (also when the Hub is switched off)."""
    from huggingface_hub import constants, get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: run `hf auth login` or set HF_TOKEN (a token with write access) "
                           "before --push, or add --dry-run to see what would be pushed")
    if constants.HF_HUB_OFFLINE:
        raise PublishError("HF_HUB_OFFLINE is set: --push needs the network (unset it, or use --dry-run)")
    return token


def plan_push(repo_id: str, readme: Path, results_copies: Sequence[tuple[Path, str]], *, card_metadata: dict,
              metadata_only: bool = False, create_pr: bool = False, private: bool = False,
              model_dir: Path | None = None) -> list[HubOperation]:
    """The operations of a push (module docstring), in the order they run."""
    operations: list[HubOperation] = []
    if not metadata_only:
        operations.append(HubOperation("create_repo", {"repo_id": repo_id, "repo_type": "model", "exist_ok": True,
                                                       "private": private}))
    if model_dir is not None:
        for file in sorted(Path(model_dir).iterdir()):
            if file.is_file() and not file.name.startswith(".") and file.name != "README.md":
                operations.append(_upload(repo_id, file, file.name, f"{COMMIT_PREFIX}: upload model file"))
    for local, path_in_repo in results_copies:
        operations.append(_upload(repo_id, local, path_in_repo, f"{COMMIT_PREFIX}: upload benchmark results"))
    if metadata_only:
        operations.append(HubOperation("metadata_update", {
            "repo_id": repo_id, "metadata": card_metadata, "repo_type": "model", "overwrite": True,
            "commit_message": f"{COMMIT_PREFIX}: update model-index and metadata", "create_pr": create_pr,
        }))
    else:
        operations.append(_upload(repo_id, readme, "README.md", f"{COMMIT_PREFIX}: upload model card"))
    return operations


def print_plan(operations: Sequence[HubOperation]) -> None:
    """Print the operations a push would run (the dry run)."""
    print(f"dry run: {len(operations)} huggingface_hub operations would run, in this order (token omitted):")
    for number, operation in enumerate(operations, start=1):
        print(f"{number}. {operation.describe()}")


def execute(operations: Sequence[HubOperation], token: str) -> None:
    """Run the operations in order; the first failure stops the push with an error naming it."""
    for number, operation in enumerate(operations, start=1):
        try:
            outcome = operation.run(token)
        except Exception as error:  # any Hub failure: auth, network, permissions, conflicts
            raise PublishError(f"push stopped at operation {number}/{len(operations)} {operation.describe()}: "
                               f"{type(error).__name__}: {error}") from error
        print(f"{number}/{len(operations)} {operation.function}: {outcome}")


def _upload(repo_id: str, local: Path, path_in_repo: str, message: str) -> HubOperation:
    return HubOperation("upload_file", {"path_or_fileobj": str(local), "path_in_repo": path_in_repo,
                                        "repo_id": repo_id, "repo_type": "model", "commit_message": message})


__all__ = ["HubOperation", "PublishError", "execute", "plan_push", "print_plan", "require_push_credentials"]
