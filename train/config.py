"""Typed run configuration of `train/pretrain.py`: YAML file + dotted `key=value` overrides (STYLE rule 11), merged
by OmegaConf onto the structured schema of the dataclasses below.

Every key is checked: an unknown key is an error that lists the valid ones, before any compute. The resolved
configuration is written to the output directory (`config.yaml`) and to the trackers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from modeling_phenom.image_processing_phenom import UINT16_RULES
from phenom_data.atomic import atomic_write_text


@dataclass
class ModelConfig:
    preset: str = "tiny"  # a PhenomConfig preset: tiny, ca-s16, ca-b16, l16, l8, g8
    overrides: dict[str, Any] = field(default_factory=dict)  # PhenomConfig fields, e.g. {drop_path_rate: 0.1}
    init_from: str | None = None  # optional save_pretrained directory or Hub id to start from
    # init_from may lack tensors (they start from the preset's init, e.g. a new decoder for an encoder-only model) or
    # hold unused ones; false refuses such a checkpoint
    allow_partial_init: bool = False


@dataclass
class DataConfig:
    path: str | None = None  # any phenom_data.open_wells source: RxRx3-core (Hub id or folder), RxRx1, LoadData CSV
    metadata: str | None = None  # metadata CSV; default: the one inside `path`
    well_list: str | None = None  # text file, one well_id per line (e.g. written by `phenom curate`)
    experiments: list[str] | None = None
    perturbation_types: list[str] | None = None
    channels: list[str] | None = None  # channels to stack, in order (LoadData names, RxRx names); default all
    crop_size: int | None = None  # the model's image_size (one owner); a value here must equal it
    uint16_rule: str | None = None  # channel_max | shift | percentile; default: init_from's, else channel_max
    num_workers: int = 0
    shuffle_buffer_size: int = 64  # wells held to shuffle the stream order (0 = reading order)
    revision: str | None = None
    record_wells: bool = False  # write wells-rank<r>.tsv: the step and well_id of every training sample


@dataclass
class OptimConfig:
    peak_lr: float = 1e-4  # absolute at `reference_global_batch_size`
    reference_global_batch_size: int | None = None  # the batch `peak_lr` was set for; default: global_batch_size
    lr_scaling: str = "none"  # none | linear (peak_lr * global_batch_size / reference_global_batch_size)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # two numbers (checked in `validate`)
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1  # share of steps warming up from peak/initial_lr_divisor to peak
    initial_lr_divisor: float = 25.0
    final_lr_divisor: float = 1e4  # cosine decay ends at peak / final_lr_divisor
    grad_clip: float | None = 1.0  # max global gradient norm; null = no clipping (<= 0 is refused, not "off")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output_dir: str = "outputs/pretrain"
    seed: int = 0
    max_steps: int = 100
    global_batch_size: int = 16
    per_device_batch_size: int = 8
    mixed_precision: str = "auto"  # auto (bf16 on CUDA, none elsewhere) | no | bf16 | fp16
    gradient_checkpointing: bool = False
    log_every: int = 1
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    reconstruction_every: int = 50
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    progress: bool = True  # the tqdm bar on the main process (progress=false for logs and scripted runs)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists, as `config.yaml` and `run.json` hold them."""
        return OmegaConf.to_container(OmegaConf.structured(self))


def _section(key: str):
    """The dataclass holding dotted `key` (`optim.peak_lr` -> OptimConfig) and the key's last part."""
    cls, *parents = TrainConfig, *key.split(".")[:-1]
    for part in parents:
        field_type = typing.get_type_hints(cls).get(part)
        if not dataclasses.is_dataclass(field_type):
            return None, key
        cls = field_type
    return cls, key.rsplit(".", 1)[-1]


def _expected(hint) -> str:
    """How an error names a field's type: `int`, `float or null`, `a list`, `true or false`."""
    kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return " or ".join("null" if kind is type(None) else "a list" if typing.get_origin(kind) in (list, tuple)
                       else "true or false" if kind is bool else getattr(kind, "__name__", str(kind))
                       for kind in kinds)


@contextlib.contextmanager
def _config_errors(source: str):
    """OmegaConf's errors as one-line `ValueError`s that name the key: an unknown key lists the valid keys of its
    section, a value of the wrong type names the type the key takes."""
    try:
        yield
    except ConfigKeyError as error:
        cls, _ = _section(error.full_key or "")
        prefix = error.full_key.rsplit(".", 1)[0] + "." if "." in (error.full_key or "") else ""
        valid = ", ".join(prefix + item.name for item in dataclasses.fields(cls)) if cls else "?"
        raise ValueError(f"unknown config key(s) {error.full_key}; valid keys: {valid} (in {source})") from None
    except OmegaConfBaseException as error:
        cls, name = _section(error.full_key or "")
        hint = typing.get_type_hints(cls).get(name) if cls else None
        if hint is not None and dataclasses.is_dataclass(hint):
            raise ValueError(f"config section {error.full_key} must be a mapping, got {error.value!r}") from None
        if hint is not None:
            raise ValueError(f"config key {error.full_key} must be {_expected(hint)}, got {error.value!r}") from None
        raise ValueError(f"invalid run config ({source}): {str(error).splitlines()[0]}") from None


def _read_yaml(path: str | Path) -> DictConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        values = OmegaConf.load(path)
    except yaml.YAMLError as error:
        raise ValueError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(values, DictConfig):
        raise ValueError(f"config file {path} must be a mapping of config keys, got a list")
    return values


def _dotlist(overrides: list[str]) -> DictConfig:
    """Dotted `key=value` overrides; values parse as YAML (`max_steps=40`, `optim.betas=[0.9,0.95]`, `key=` = null)."""
    for assignment in overrides:
        if "=" not in assignment:
            raise ValueError(f"override {assignment!r} is not of the form key=value (e.g. data.path=DIR max_steps=40)")
    return OmegaConf.from_dotlist(list(overrides))


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML run config, apply dotted overrides, validate and return the typed config.

    OmegaConf merges the layers onto the structured schema of `TrainConfig` (types, defaults, unknown keys); the
    range and choice checks that OmegaConf cannot express follow in `validate`, all before any work."""
    schema = OmegaConf.structured(TrainConfig)
    layers = [_read_yaml(path)] if path is not None else []
    with _config_errors(str(path) if path is not None else "overrides"):
        merged = OmegaConf.merge(schema, *layers)
    with _config_errors("overrides"):
        config = OmegaConf.to_object(OmegaConf.merge(merged, _dotlist(overrides)))
    validate(config)
    return config


def _check_range(name: str, value, low: float, high: float = math.inf, *, integer: bool = False,
                 low_open: bool = False, high_open: bool = True) -> None:
    """`value` must be a finite number (an integer when `integer`) within `low`..`high` (bounds open as told)."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if value < low or (low_open and value == low) or value > high or (high_open and value == high):
        lower = f"{'>' if low_open else '>='} {low}"
        bounds = lower if high == math.inf else f"{lower} and {'<' if high_open else '<='} {high}"
        raise ValueError(f"{name} must be {kind} {bounds}, got {value!r}")


def _phenom_config_fields() -> list[str]:
    from modeling_phenom import PhenomConfig

    parameters = inspect.signature(PhenomConfig.__init__).parameters.values()
    return [item.name for item in parameters if item.name != "self" and item.kind is item.POSITIONAL_OR_KEYWORD]


def validate(config: TrainConfig) -> None:
    """Checks that need no data and no processes (the batch split is checked once the world size is known): every
    numeric option in its range, the choices, and `model.overrides` against `PhenomConfig`'s fields and checks."""
    for name in ("max_steps", "global_batch_size", "per_device_batch_size", "log_every", "checkpoint_every",
                 "keep_checkpoints", "reconstruction_every"):
        _check_range(name, getattr(config, name), 1, integer=True)
    _check_range("seed", config.seed, 0, 2**32, integer=True)  # numpy's seed range
    optim, data = config.optim, config.data
    _check_range("optim.peak_lr", optim.peak_lr, 0, low_open=True)
    if optim.reference_global_batch_size is not None:
        _check_range("optim.reference_global_batch_size", optim.reference_global_batch_size, 1, integer=True)
    if len(optim.betas) != 2:
        raise ValueError(f"optim.betas must be two numbers like [0.9, 0.95], got {optim.betas!r}")
    for index, beta in enumerate(optim.betas):
        _check_range(f"optim.betas[{index}]", beta, 0, 1)
    _check_range("optim.weight_decay", optim.weight_decay, 0)
    _check_range("optim.warmup_fraction", optim.warmup_fraction, 0, 1)
    _check_range("optim.initial_lr_divisor", optim.initial_lr_divisor, 1)
    _check_range("optim.final_lr_divisor", optim.final_lr_divisor, 1)
    if optim.grad_clip is not None:  # -1 or 0 meant as "off" would reverse or zero the gradients: null is off
        try:
            _check_range("optim.grad_clip", optim.grad_clip, 0, low_open=True)
        except ValueError as error:
            raise ValueError(f"{error} (optim.grad_clip=null turns clipping off)") from None
    if data.crop_size is not None:  # null: the model's image_size
        _check_range("data.crop_size", data.crop_size, 1, integer=True)
    _check_range("data.num_workers", data.num_workers, 0, integer=True)
    _check_range("data.shuffle_buffer_size", data.shuffle_buffer_size, 0, integer=True)
    if optim.lr_scaling not in ("none", "linear"):
        raise ValueError(f"optim.lr_scaling must be 'none' or 'linear', got {optim.lr_scaling!r}")
    if config.mixed_precision not in ("auto", "no", "bf16", "fp16"):
        raise ValueError(f"mixed_precision must be auto, no, bf16 or fp16, got {config.mixed_precision!r}")
    if data.uint16_rule is not None and data.uint16_rule not in UINT16_RULES:
        raise ValueError(f"data.uint16_rule must be one of {', '.join(UINT16_RULES)}, got {data.uint16_rule!r}")
    if data.path is None:
        raise ValueError("data.path is not set: give a Hub dataset id, a local directory or a LoadData/plate CSV "
                         "(data.path=...)")
    validate_model(config.model)


def validate_model(model: ModelConfig) -> None:
    """`model.overrides` may name only `PhenomConfig` fields, and the preset with them must be a valid config."""
    from modeling_phenom import PhenomConfig

    valid = _phenom_config_fields()
    unknown = sorted(set(model.overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown model.overrides key(s) {', '.join(unknown)}; valid keys (PhenomConfig fields): "
                         f"{', '.join(valid)}")
    if model.init_from:
        return  # the overrides apply to the saved config, checked when it loads
    try:
        PhenomConfig.from_preset(model.preset, **model.overrides)
    except (ValueError, TypeError) as error:
        raise ValueError(f"model.preset={model.preset} with model.overrides {model.overrides}: {error}") from None


def effective_peak_lr(config: TrainConfig) -> float:
    """The peak learning rate used for this run's global batch (`lr_scaling`)."""
    reference = config.optim.reference_global_batch_size or config.global_batch_size
    if config.optim.lr_scaling == "linear":
        return config.optim.peak_lr * config.global_batch_size / reference
    return config.optim.peak_lr


def gradient_accumulation_steps(config: TrainConfig, num_processes: int) -> int:
    """global batch = per-device batch x processes x accumulation; anything else is an error."""
    per_step = config.per_device_batch_size * num_processes
    if config.global_batch_size % per_step:
        raise ValueError(
            f"global_batch_size {config.global_batch_size} is not divisible by per_device_batch_size "
            f"{config.per_device_batch_size} x {num_processes} process(es) = {per_step}"
        )
    return config.global_batch_size // per_step


def save_config(config: TrainConfig, path: Path) -> None:
    """The resolved config as YAML (`config.yaml` of a run), written atomically."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "effective_peak_lr",
    "gradient_accumulation_steps",
    "load_config",
    "save_config",
    "validate",
    "validate_model",
]
