"""`load_pretrained`: `from_pretrained` that refuses a checkpoint that does not fit, instead of reporting it.

transformers loads what it can and prints a load report: tensors the checkpoint lacks are freshly initialized
(a checkpoint missing block 4 gives a model whose block 4 is random), tensors the model has no place for are
dropped, and NaN or infinite weights load as they are (every embedding is then NaN). Phenom's commands load models
through this function, which turns each of these into an error naming the tensors, unless the caller asks for
partial loading (for example an encoder-only checkpoint as the start of MAE pretraining, whose decoder is new).
Tensors a model class ignores on purpose (`_keys_to_ignore_on_load_unexpected`: the decoder of a pretraining
checkpoint loaded as an encoder, blocks past `trim_encoder_blocks`) are not reported by transformers and not refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id


class CheckpointMismatchError(ValueError):
    """A checkpoint lacks tensors the model needs, holds tensors it has no place for, or has other shapes."""


class NonFiniteWeightsError(ValueError):
    """A checkpoint holds NaN or infinite weights."""


def check_model_source(name_or_path: str | os.PathLike, what: str = "model") -> None:
    """Refuse, before any download or load, a model location that cannot work: a local folder must hold
    `config.json`; a path that does not exist is named as such (not "Repo id must be in the form ..."); anything else
    must be a valid Hub repo id (`owner/name`)."""
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{what} folder {path} has no config.json: a model folder holds config.json and "
                                    "its weights (model.safetensors), as save_pretrained writes them")
        return
    if path.exists():
        raise ValueError(f"{what} {path} is a file: give a save_pretrained folder or a Hub repo id (owner/name)")
    text = str(name_or_path)
    try:
        validate_repo_id(text)
    except HFValidationError:
        raise FileNotFoundError(f"{what} {text} does not exist (no such local folder, and not a Hub repo id such as "
                                "owner/name)") from None
    if text.startswith((".", "~")) or text.count("/") > 1:
        raise FileNotFoundError(f"{what} {text} does not exist (no such local folder)")


def _summary(names) -> str:
    names = sorted(names)
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def check_loading_info(name_or_path, info: dict) -> None:
    """Raise `CheckpointMismatchError` when transformers' loading info reports missing, unexpected or mismatched
    tensors."""
    problems = []
    if info.get("missing_keys"):
        problems.append(f"{len(info['missing_keys'])} tensors missing (they would be randomly initialized): "
                        f"{_summary(info['missing_keys'])}")
    if info.get("unexpected_keys"):
        problems.append(f"{len(info['unexpected_keys'])} unexpected tensors (they would be dropped): "
                        f"{_summary(info['unexpected_keys'])}")
    if info.get("mismatched_keys"):
        mismatched = [item[0] if isinstance(item, (tuple, list)) else item for item in info["mismatched_keys"]]
        problems.append(f"{len(mismatched)} tensors of another shape: {_summary(mismatched)}")
    if problems:
        raise CheckpointMismatchError(f"{name_or_path} does not fit the model it describes: {'; '.join(problems)}")


@torch.no_grad()
def check_finite_weights(name_or_path, model: torch.nn.Module) -> None:
    """Raise `NonFiniteWeightsError` naming the parameters and buffers that hold NaN or infinite values."""
    bad = [name for name, tensor in model.state_dict().items()
           if tensor.is_floating_point() and tensor.device.type != "meta" and not torch.isfinite(tensor).all()]
    if bad:
        raise NonFiniteWeightsError(f"{name_or_path} holds NaN or infinite weights in {len(bad)} tensors: "
                                    f"{_summary(bad)}")


def load_pretrained(model_class, name_or_path, *, allow_partial: bool = False, **kwargs):
    """`model_class.from_pretrained(name_or_path, **kwargs)` (a model class or an Auto class), refused with
    `CheckpointMismatchError` when tensors are missing, unexpected or of another shape (unless `allow_partial`) and
    with `NonFiniteWeightsError` when a weight is NaN or infinite. Returns the model."""
    kwargs.pop("output_loading_info", None)
    model, info = model_class.from_pretrained(name_or_path, output_loading_info=True, **kwargs)
    if not allow_partial:
        check_loading_info(name_or_path, info)
    check_finite_weights(name_or_path, model)
    return model


__all__ = ["CheckpointMismatchError", "NonFiniteWeightsError", "check_finite_weights", "check_loading_info",
           "check_model_source", "load_pretrained"]
