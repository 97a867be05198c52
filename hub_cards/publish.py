"""Push a card to the Hugging Face Hub with `huggingface_hub` (`create_repo`, `upload_file`, `metadata_update`).

A push is a list of `HubOperation`s (a `huggingface_hub` function and its keyword arguments) planned before anything
runs; `--dry-run` prints exactly that list and `execute` runs exactly that list, so the dry run shows what a push
does. Two modes:

- default: `create_repo(exist_ok=True)`, then `upload_file` for the model files (with `--upload-model`), the results
  copies and, last, `README.md` (the card replaces the repo's README);

With `--upload-model` the repo becomes Hub-native (`stage_model_files`): `config.json`, `preprocessor_config.json` and
the Phenom source files are written afresh by the installed Phenom, as its `save_pretrained` writes them, so
`AutoModel.from_pretrained(repo, trust_remote_code=True)` works without Phenom even for a directory saved before
Phenom wrote remote code.
- `--metadata-only`: `metadata_update(overwrite=True)` merges the card's front matter and model-index into the repo's
  existing README (its prose stays), optionally as a pull request, plus `upload_file` for the results copies.

Credentials are checked before any work: no token (`HF_TOKEN` or `hf auth login`) or `HF_HUB_OFFLINE=1` is an error.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMMIT_PREFIX = "phenom card"
logger = logging.getLogger(__name__)


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


def stage_model_files(model_dir: Path, staging: Path) -> list[tuple[Path, str]]:
    """`(local file, path in repo)` of every model file `--upload-model` uploads, sorted by path in repo.

    `config.json` (with `auto_map` and `custom_pipelines`), `preprocessor_config.json` (with `auto_map`, when the model
    has one) and the Phenom source files are written into `staging` (emptied first); every other file of `model_dir`
    except `README.md` (the card) and hidden files is uploaded as it is. Raises `PublishError` for a directory that is
    not a native Phenom one (OpenPhenom's legacy layout: convert it with `phenom convert` first).
    """
    from transformers import AutoConfig
    from transformers.dynamic_module_utils import custom_object_save

    from modeling_phenom import PhenomConfig, PhenomImageProcessor, PhenomModel
    from modeling_phenom.modeling_phenom import remote_code_fields

    model_dir = Path(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    if type(config) is not PhenomConfig:
        raise PublishError(f"--upload-model publishes a native Phenom directory; {model_dir} holds a "
                           f"{type(config).__name__} (model_type {config.model_type!r}): convert OpenPhenom weights "
                           "with `phenom convert` first")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, value in remote_code_fields().items():
        setattr(config, name, value)
    config.save_pretrained(staging)
    custom_object_save(PhenomModel, staging)  # modeling_phenom.py and every file it imports
    if (model_dir / "preprocessor_config.json").is_file():
        PhenomImageProcessor.from_pretrained(model_dir).save_pretrained(staging)
    files = {file.name: file for file in model_dir.iterdir()
             if file.is_file() and not file.name.startswith(".") and file.name != "README.md"}
    files.update((file.name, file) for file in staging.iterdir())
    return [(file, name) for name, file in sorted(files.items())]


def plan_push(repo_id: str, readme: Path, results_copies: Sequence[tuple[Path, str]], *, card_metadata: dict,
              metadata_only: bool = False, create_pr: bool = False, private: bool = False,
              model_files: Sequence[tuple[Path, str]] = ()) -> list[HubOperation]:
    """The operations of a push (module docstring), in the order they run; `model_files` from `stage_model_files`."""
    operations: list[HubOperation] = []
    if not metadata_only:
        operations.append(HubOperation("create_repo", {"repo_id": repo_id, "repo_type": "model", "exist_ok": True,
                                                       "private": private}))
    for local, path_in_repo in model_files:
        operations.append(_upload(repo_id, local, path_in_repo, f"{COMMIT_PREFIX}: upload model file"))
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


def execute(operations: Sequence[HubOperation], token: str) -> list:
    """Run the operations in order and return what each returned; the first failure stops the push with an error
    naming it. Each finished operation is logged (INFO) as it completes."""
    outcomes = []
    for number, operation in enumerate(operations, start=1):
        try:
            outcomes.append(operation.run(token))
        except Exception as error:  # any Hub failure: auth, network, permissions, conflicts
            raise PublishError(f"push stopped at operation {number}/{len(operations)} {operation.describe()}: "
                               f"{type(error).__name__}: {error}") from error
        logger.info("%d/%d %s: %s", number, len(operations), operation.function, outcomes[-1])
    return outcomes


def _upload(repo_id: str, local: Path, path_in_repo: str, message: str) -> HubOperation:
    return HubOperation("upload_file", {"path_or_fileobj": str(local), "path_in_repo": path_in_repo,
                                        "repo_id": repo_id, "repo_type": "model", "commit_message": message})


__all__ = ["HubOperation", "PublishError", "execute", "plan_push", "require_push_credentials",
           "stage_model_files"]
