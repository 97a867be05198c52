"""What a card says about the model: geometry from its `config.json`, parameter counts, provenance and license,
and the training run's resolved config when one is found.

`--model` is a `save_pretrained` directory or a Hub repo id (resolved with `huggingface_hub`, so offline only a
cached repo resolves). The config is read through `AutoConfig` after `import modeling_phenom`, so a Phenom-native
config and (once registered) OpenPhenom's legacy `"MAE"` config both work; parameters are counted on the meta
device, so even G/8 costs no memory. Weights converted from OpenPhenom (legacy `model_type` `"MAE"`, or
`legacy_bias_routing: true`, which only converted OpenPhenom weights set: DESIGN §3) keep Recursion's
non-commercial license.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from .references import (
    OPENPHENOM_LICENSE,
    OPENPHENOM_REPO_ID,
    PRESET_GEOMETRY_FIELDS,
    RXRX_DATA_LICENSE,
    looks_like_hub_id,
)


class ModelSourceError(ValueError):
    """`--model` names nothing readable (the message says what was looked for)."""


class LicenseError(ValueError):
    """A license request the weights cannot carry (converted OpenPhenom weights keep theirs)."""


@dataclass
class ModelDescription:
    """The facts a card states about one model.

    Attributes:
        source: `--model` as given.
        local_dir: the directory when `source` is one, else `None`.
        repo_id: the Hub repo id when `source` is one, else `None`.
        raw_config: `config.json` as written.
        config: the config as `AutoConfig` reads it (a `PhenomConfig`).
        preset: the `PhenomConfig` preset whose geometry matches, or `None`.
        encoder_parameters: parameters of the encoder (`AutoModel`) the config builds, frozen tables included.
        weight_file_parameters: values stored in the local `model.safetensors` (decoder included), or `None`.
        has_preprocessor_config: whether the model ships a `preprocessor_config.json`.
        openphenom_derived: weights converted from OpenPhenom (they keep its non-commercial license).
        training_config: the training run's resolved `config.yaml`, when found; `training_config_path` says where.
    """

    source: str
    local_dir: Path | None
    repo_id: str | None
    raw_config: dict[str, Any]
    config: Any
    preset: str | None
    encoder_parameters: int
    weight_file_parameters: int | None
    has_preprocessor_config: bool
    openphenom_derived: bool
    training_config: dict[str, Any] | None = None
    training_config_path: Path | None = None

    @property
    def default_name(self) -> str:
        """A model name for the card when none is given: the repo id, else the directory's name."""
        if self.repo_id:
            return self.repo_id
        directory = self.local_dir.resolve()
        # `train/` writes OUT/final/: the run folder names the model better than "final".
        return directory.parent.name if directory.name == "final" and directory.parent.name else directory.name


def describe_model(source: str, revision: str | None = None, training_config: str | Path | None = None,
                   cache_dir: str | Path | None = None) -> ModelDescription:
    """Read the model named by `source` (directory or Hub id; `revision` and `cache_dir` as in `hf_hub_download`);
    see the module docstring."""
    local_dir, repo_id, config_file = _resolve_config_file(source, revision, cache_dir)
    raw_config = _read_json(config_file)
    config = _auto_config(local_dir or repo_id, revision, cache_dir, source)
    training_path = _find_training_config(local_dir, training_config)
    return ModelDescription(
        source=source,
        local_dir=local_dir,
        repo_id=repo_id,
        raw_config=raw_config,
        config=config,
        preset=match_preset(config),
        encoder_parameters=count_encoder_parameters(config),
        weight_file_parameters=_weight_file_parameters(local_dir) if local_dir else None,
        has_preprocessor_config=_has_file(local_dir, repo_id, revision, cache_dir, "preprocessor_config.json"),
        openphenom_derived=raw_config.get("model_type") == "MAE" or raw_config.get("legacy_bias_routing") is True,
        training_config=_read_yaml(training_path) if training_path else None,
        training_config_path=training_path,
    )


def match_preset(config) -> str | None:
    """The preset of `PhenomConfig.from_preset` whose geometry `config` has (trimming aside), else `None`."""
    from modeling_phenom import PRESETS

    for name, values in PRESETS.items():
        fields = PRESET_GEOMETRY_FIELDS + (() if values.get("channel_agnostic") else ("num_channels",))
        if all(getattr(config, key, None) == values.get(key) for key in fields):
            return name
    return None


def count_encoder_parameters(config) -> int:
    """Parameters of `AutoModel.from_config(config)`, built on the meta device (no memory, any size)."""
    import torch
    from transformers import AutoModel

    import modeling_phenom  # noqa: F401  (registers Phenom with the Auto classes)

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return sum(parameter.numel() for parameter in model.parameters())


def resolve_license(model: ModelDescription, license: str | None = None, license_name: str | None = None,
                    license_link: str | None = None) -> tuple[dict[str, str], str]:
    """Front-matter license fields and a sentence saying why.

    OpenPhenom-derived weights always keep Recursion's non-commercial EULA (asking for another license is an error);
    otherwise `license` wins; otherwise a training config that reads one of Recursion's Hub datasets
    (`recursionpharma/...`) gives the data's non-commercial EULA; otherwise Apache-2.0, the license of the code that
    made the weights (a local copy of RxRx data cannot be recognized: pass `license` then).
    """
    if model.openphenom_derived:
        if license not in (None, "other") or license_name not in (None, OPENPHENOM_LICENSE["license_name"]):
            raise LicenseError(f"these weights are converted from {OPENPHENOM_REPO_ID} and stay under its "
                             "non-commercial license (Recursion Non-Commercial End User License Agreement); "
                             f"they cannot be relicensed as {license_name or license!r}")
        return dict(OPENPHENOM_LICENSE), (f"The weights are converted from {OPENPHENOM_REPO_ID} and keep its license, "
                                          "the Recursion Non-Commercial End User License Agreement.")
    if license is not None:
        if license == "other" and not license_name:
            raise LicenseError("--license other needs --license-name (and preferably --license-link)")
        fields = {"license": license}
        fields.update({key: value for key, value in (("license_name", license_name), ("license_link", license_link))
                       if value})
        return fields, "License chosen by the publisher."
    if any(dataset.lower().startswith("recursionpharma/") for dataset in training_datasets(model)):
        return dict(RXRX_DATA_LICENSE), ("The training run read Recursion's RxRx data, which Recursion licenses "
                                         "for non-commercial use only; the weights follow the data's terms.")
    return {"license": "apache-2.0"}, ("No non-commercial training data is recorded for these weights; they carry "
                                       "the Apache-2.0 license of the Phenom code that produced them.")


def training_datasets(model: ModelDescription) -> list[str]:
    """Hub dataset ids the training config reads (string values shaped `owner/name` that are not local paths)."""
    found: list[str] = []

    def visit(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, str) and looks_like_hub_id(value) and not Path(value).exists() and value not in found:
            found.append(value)

    visit((model.training_config or {}).get("data", {}))
    return found


# ----------------------------------------------------------------------------------------------- resolution
def _resolve_config_file(source: str, revision: str | None, cache_dir) -> tuple[Path | None, str | None, Path]:
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(f"--model {source} is a file; pass the directory that holds config.json "
                                   "(a save_pretrained directory) or a Hub repo id")
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"model directory {path} has no config.json (expected a save_pretrained "
                                   "directory)")
        return path, None, path / "config.json"
    if not looks_like_hub_id(source):
        raise ModelSourceError(f"model directory {source} does not exist (and it is not a Hub repo id owner/name)")
    from huggingface_hub import hf_hub_download

    try:
        return None, source, Path(hf_hub_download(source, "config.json", revision=revision, cache_dir=cache_dir))
    except Exception as error:  # any Hub failure: offline miss, missing repo, auth, ...
        raise ModelSourceError(
            f"--model {source}: no such local directory, and config.json of the Hub repo {source!r} could not be "
            f"fetched ({type(error).__name__}: {error}). With HF_HUB_OFFLINE=1 only repos already in the Hugging "
            "Face cache resolve."
        ) from error


def _auto_config(location, revision: str | None, cache_dir, source: str):
    from transformers import AutoConfig

    import modeling_phenom  # noqa: F401  (registers Phenom with the Auto classes)

    try:
        return AutoConfig.from_pretrained(str(location), revision=revision, cache_dir=cache_dir)
    except Exception as error:
        raise ModelSourceError(f"cannot read the model config of {source} with transformers' AutoConfig after "
                               f"`import modeling_phenom`: {type(error).__name__}: {error}") from error


def _has_file(local_dir: Path | None, repo_id: str | None, revision: str | None, cache_dir, filename: str) -> bool:
    if local_dir is not None:
        return (local_dir / filename).is_file()
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir)
    except Exception:  # absent from the repo, or offline and not cached: the card then builds a default processor
        return False
    return True


def _weight_file_parameters(directory: Path) -> int | None:
    """Values stored in `model.safetensors` (or its shards), read from the headers only; `None` when there is no
    real safetensors file (OpenPhenom's released weights are a torch zip under that name: openphenom.md §2)."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        counts = [_safetensors_values(directory / shard) for shard in shards]
        return None if not counts or None in counts else sum(counts)
    single = directory / "model.safetensors"
    return _safetensors_values(single) if single.is_file() else None


def _safetensors_values(path: Path) -> int | None:
    """Values in one safetensors file, from its header (safetensors' own reader; no tensor is loaded); `None` when
    the file is not safetensors (a torch zip, a Git LFS pointer, a truncated file)."""
    try:
        with safe_open(path, framework="pt") as weights:
            return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())
    except SafetensorError:
        return None


def _find_training_config(local_dir: Path | None, given: str | Path | None) -> Path | None:
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise ModelSourceError(f"training config {path} does not exist")
        return path
    if local_dir is None:
        return None
    # train/pretrain.py writes OUT/config.yaml beside OUT/final/ (DESIGN §5).
    for candidate in (local_dir / "config.yaml", local_dir.resolve().parent / "config.yaml"):
        if candidate.is_file():
            return candidate
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelSourceError(f"cannot read {path}: {error}") from error
    if not isinstance(document, dict):
        raise ModelSourceError(f"{path} must hold a JSON object")
    return document


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ModelSourceError(f"cannot read the training config {path}: {error}") from error
    if not isinstance(document, dict):
        raise ModelSourceError(f"training config {path} must be a YAML mapping")
    return document


__all__ = [
    "LicenseError",
    "ModelDescription",
    "ModelSourceError",
    "count_encoder_parameters",
    "describe_model",
    "match_preset",
    "resolve_license",
    "training_datasets",
]
