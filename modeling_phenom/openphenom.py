"""OpenPhenom compatibility: the released `recursionpharma/OpenPhenom` checkpoint without remote code.

``import modeling_phenom`` registers the legacy model_type ``"MAE"`` (`OpenPhenomConfig`, `OpenPhenomModel`,
`OpenPhenomForMaskedImageModeling`), so ``AutoModel.from_pretrained("recursionpharma/OpenPhenom")`` (or a local
directory in the Hub layout) gives the encoder and ``AutoModelForMaskedImageModeling`` the encoder with its decoder,
reproducing the reference (``reference/openphenom.md``):

* §1: the Hub ``config.json`` (hydra ``_target_`` dicts, override kwargs inside ``encoder.vit_backbone.vit_backbone``)
  is translated by [`translate_openphenom_config`]; legacy behaviour is kept where parity needs it: timm <= 1.0.24's
  bias routing (§3.4), decoder LayerNorm eps 1e-5 (§3.6), the reference Fourier reshape (§3.8), the masked latent in
  shuffled order (§3.7).
* §2: the weight file (a torch zip named ``model.safetensors``, or real safetensors) is read by the one checked door
  [`read_openphenom_weights`] (bytes sniffed; pickles only through ``torch.load(handle, weights_only=True)``) and its
  keys are mapped by the pure functions [`openphenom_to_phenom_state_dict`] / [`phenom_to_openphenom_state_dict`].

``phenom convert SRC DST [--encoder-only]`` (`phenom/convert_writer.py`, outside the model package so that
``import modeling_phenom`` does not load it) writes a native Phenom directory from what this module reads.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.constants import is_offline_mode
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
from transformers import PreTrainedConfig

from .configuration_phenom import PhenomConfig
from .modeling_phenom import PhenomForMaskedImageModeling, PhenomModel, PhenomPreTrainedModel

HUB_REPO_ID = "recursionpharma/OpenPhenom"
LEGACY_MODEL_TYPE = "MAE"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"  # the released name, although the file is a torch zip (openphenom.md §2)
LICENSE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt")
LICENSE_NAME = "Recursion Non-Commercial End User License Agreement"

# ----------------------------------------------------------------------------- config translation
# Backbones of maes_microscopy `vit.py` (all timm ParallelScalingBlock ViTs, MLP ratio 4, qk-norm, no qkv bias,
# LayerScale 1e-4): name -> (patch_size, img_size, embed_dim, depth, num_heads, drop_path_rate).
_VIT_SIZES = {
    "vit.vit_small_patch16_256": (16, 256, 384, 12, 6, 0.1),
    "vit.vit_small_patch32_512": (32, 512, 384, 12, 6, 0.1),
    "vit.vit_base_patch8_256": (8, 256, 768, 12, 12, 0.1),
    "vit.vit_base_patch16_256": (16, 256, 768, 12, 12, 0.1),
    "vit.vit_base_patch32_512": (32, 512, 768, 12, 12, 0.1),
    "vit.vit_large_patch8_256": (8, 256, 1024, 24, 16, 0.3),
    "vit.vit_large_patch16_256": (16, 256, 1024, 24, 16, 0.3),
}
_VIT_SIZE_NAMES = ("patch_size", "img_size", "embed_dim", "depth", "num_heads", "drop_path_rate")
VIT_BACKBONES = {name: dict(zip(_VIT_SIZE_NAMES, sizes, strict=True)) for name, sizes in _VIT_SIZES.items()}
_VIT_COMMON = dict(mlp_ratio=4.0, init_values=1e-4, qkv_bias=False, qk_norm=True, global_pool="token", in_chans=6,
                   num_classes=0, fc_norm=None, class_token=True)

# The architecture of the release (`MAEModel.__init__` hard-codes it; config.json describes the same, §1).
RELEASED_ENCODER = {
    "_target_": "mae_modules.MAEEncoder", "channel_agnostic": True, "max_in_chans": 11,
    "vit_backbone": {"_target_": "vit.sincos_positional_encoding_vit",
                     "vit_backbone": {"_target_": "vit.vit_small_patch16_256", "global_pool": "avg"}},
}
RELEASED_DECODER = {
    "_target_": "mae_modules.CAMAEDecoder", "depth": 8, "embed_dim": 512, "mlp_ratio": 4, "num_heads": 16,
    "num_modalities": 6, "qkv_bias": True, "tokens_per_modality": 256,
}
# The reference CrossAttention is built with its default head count (openphenom.md §3.6).
REFERENCE_CROSS_ATTENTION_HEADS = 8
# The Hub code builds the decoder's LayerNorms with torch's default eps, whatever config.json says (§3.6, quirk 4).
REFERENCE_DECODER_LAYER_NORM_EPS = 1e-5

# Hub config keys the released code does not use (§1): accepted and dropped.
_UNUSED_LEGACY_KEYS = {
    "_attn_implementation_autoset", "auto_map", "architectures", "transformers_version", "apply_loss_unmasked",
    "crop_size", "input_norm", "layernorm_unfreeze", "loss", "lr_scheduler", "norm_pix_loss", "num_blocks_to_freeze",
    "optimizer", "use_MAE_weight_init", "return_channelwise_embeddings",
}


def _check_keys(section: str, values: Mapping, allowed: set[str]) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(
            f"OpenPhenom config: unsupported key(s) {unknown} in {section}; supported: {sorted(allowed)}"
        )


def _expect(section: str, name: str, value, expected) -> None:
    if value != expected:
        raise ValueError(
            f"OpenPhenom config: {section}.{name} = {value!r} is not supported (only {expected!r}, as released)"
        )


def _translate_encoder(encoder: Mapping) -> dict:
    _check_keys("encoder", encoder, {"_target_", "channel_agnostic", "max_in_chans", "vit_backbone"})
    _expect("encoder", "_target_", encoder.get("_target_"), "mae_modules.MAEEncoder")
    _expect("encoder", "channel_agnostic", encoder.get("channel_agnostic", False), True)
    wrapper = encoder.get("vit_backbone") or {}
    _check_keys("encoder.vit_backbone", wrapper, {"_target_", "vit_backbone", "scale"})
    _expect("encoder.vit_backbone", "_target_", wrapper.get("_target_"), "vit.sincos_positional_encoding_vit")
    _expect("encoder.vit_backbone", "scale", float(wrapper.get("scale", 10000.0)), 10000.0)
    backbone = dict(wrapper.get("vit_backbone") or {})
    target = backbone.pop("_target_", None)
    if target not in VIT_BACKBONES:
        raise ValueError(
            f"OpenPhenom config: encoder.vit_backbone.vit_backbone._target_ {target!r} is not a known backbone; "
            f"supported: {sorted(VIT_BACKBONES)}"
        )
    vit = {**_VIT_COMMON, **VIT_BACKBONES[target]}
    _check_keys(f"encoder.vit_backbone.vit_backbone ({target})", backbone, set(vit))
    vit.update(backbone)
    if vit["global_pool"] != "avg":
        raise ValueError(
            f"OpenPhenom config: global_pool {vit['global_pool']!r} is not supported: the released model uses 'avg' "
            "(no final LayerNorm, an fc_norm head; openphenom.md §3.5)"
        )
    _expect("encoder.vit_backbone.vit_backbone", "num_classes", vit["num_classes"], 0)
    _expect("encoder.vit_backbone.vit_backbone", "fc_norm", vit["fc_norm"], None)
    _expect("encoder.vit_backbone.vit_backbone", "class_token", vit["class_token"], True)
    return dict(
        image_size=int(vit["img_size"]),
        patch_size=int(vit["patch_size"]),
        num_channels=int(encoder.get("max_in_chans", 6)),  # MAEEncoder's default; the release says 11
        channel_agnostic=True,
        hidden_size=int(vit["embed_dim"]),
        num_hidden_layers=int(vit["depth"]),
        num_attention_heads=int(vit["num_heads"]),
        intermediate_size=int(vit["embed_dim"] * vit["mlp_ratio"]),
        hidden_act="gelu",
        block_type="parallel",
        qk_norm=bool(vit["qk_norm"]),
        qkv_bias=bool(vit["qkv_bias"]),
        layer_scale_init_value=vit["init_values"],
        drop_path_rate=float(vit["drop_path_rate"]),
        legacy_bias_routing=True,
        layer_norm_eps=1e-6,
    )


def _translate_decoder(decoder: Mapping, grid_size: int) -> dict:
    allowed = {"_target_", "depth", "embed_dim", "mlp_ratio", "norm_layer", "num_heads", "num_modalities",
               "qkv_bias", "tokens_per_modality"}
    _check_keys("decoder", decoder, allowed)
    _expect("decoder", "_target_", decoder.get("_target_"), "mae_modules.CAMAEDecoder")
    _expect("decoder", "qkv_bias", decoder.get("qkv_bias", True), True)
    values = {**RELEASED_DECODER, **decoder}
    if values["tokens_per_modality"] != grid_size**2:
        raise ValueError(
            f"OpenPhenom config: decoder.tokens_per_modality {values['tokens_per_modality']} does not match the "
            f"encoder grid ({grid_size} x {grid_size} = {grid_size**2} tokens per channel)"
        )
    width = int(values["embed_dim"])
    return dict(
        decoder_type="channel_agnostic",
        decoder_hidden_size=width,
        decoder_num_hidden_layers=int(values["depth"]),
        decoder_num_attention_heads=int(values["num_heads"]),
        decoder_intermediate_size=int(width * values["mlp_ratio"]),
        decoder_num_modalities=int(values["num_modalities"]),
        decoder_cross_attention_heads=REFERENCE_CROSS_ATTENTION_HEADS,
        decoder_layer_norm_eps=REFERENCE_DECODER_LAYER_NORM_EPS,
    )


def translate_openphenom_config(hub_config: Mapping) -> dict:
    """Hub `config.json` of the OpenPhenom family (model_type "MAE") -> `PhenomConfig` keyword arguments.

    Missing architecture keys take the released values (the Hub code hard-codes them), `mask_ratio` the `MAEConfig`
    default 0.75. Keys the released code ignores are dropped; anything this translation cannot honour raises a
    `ValueError` naming it. Keys that are not OpenPhenom's (transformers' own, e.g. `output_hidden_states`) are
    returned unchanged.
    """
    values = dict(hub_config)
    values.pop("model_type", None)
    for key in _UNUSED_LEGACY_KEYS:
        values.pop(key, None)
    native = _translate_encoder(values.pop("encoder", None) or RELEASED_ENCODER)
    grid_size = native["image_size"] // native["patch_size"]
    native.update(_translate_decoder(values.pop("decoder", None) or RELEASED_DECODER, grid_size))
    fourier = values.pop("fourier_loss", None) or {"_target_": "loss.FourierLoss", "num_multimodal_modalities": 6}
    _check_keys("fourier_loss", fourier, {"_target_", "num_multimodal_modalities", "use_l1_loss"})
    _expect("fourier_loss", "_target_", fourier.get("_target_"), "loss.FourierLoss")
    _expect("fourier_loss", "use_l1_loss", fourier.get("use_l1_loss", True), True)
    if fourier.get("num_multimodal_modalities", 1) != native["decoder_num_modalities"]:
        raise ValueError(
            f"OpenPhenom config: fourier_loss.num_multimodal_modalities {fourier.get('num_multimodal_modalities', 1)}"
            f" differs from decoder.num_modalities {native['decoder_num_modalities']}"
        )
    if values.pop("trim_encoder_blocks", None) is not None:
        raise ValueError(
            "OpenPhenom config: the released code ignores trim_encoder_blocks; set it to null and pass "
            "trim_encoder_blocks=k to from_pretrained to keep blocks 1..k"
        )
    native.update(
        mask_ratio=float(values.pop("mask_ratio", 0.75)),
        fourier_loss_weight=float(values.pop("fourier_loss_weight", 0.0)),
        mask_fourier_loss=bool(values.pop("mask_fourier_loss", True)),
        fourier_loss_mode="reference",
        pixel_scale=255.0,
    )
    return {**values, **native}


class OpenPhenomConfig(PhenomConfig):
    """`PhenomConfig` read from an OpenPhenom Hub `config.json` (legacy model_type "MAE").

    Built from the Hub dict through [`translate_openphenom_config`]; with no arguments it is the released
    OpenPhenom-S/16. Serializes as a native Phenom config (model_type "phenom"), so `save_pretrained` of a loaded
    model writes a directory that reloads with the native classes.
    """

    model_type = LEGACY_MODEL_TYPE
    # This module is no part of the remote code a saved directory carries (its auto_map names PhenomConfig).
    _auto_class = None

    def __init__(self, **kwargs):
        kwargs.pop("model_type", None)
        if "hidden_size" not in kwargs:  # a Hub config.json (or nothing: the release); else native fields
            kwargs = translate_openphenom_config(kwargs)
        super().__init__(**kwargs)

    def to_dict(self) -> dict:
        output = super().to_dict()
        output["model_type"] = PhenomConfig.model_type
        if output.get("architectures"):
            output["architectures"] = [name.replace("OpenPhenom", "Phenom") for name in output["architectures"]]
        return output


# ----------------------------------------------------------------------------- key map
# Legacy key template <-> Phenom key template (MIM layout; the encoder-only model drops the "phenom." prefix).
# Fields in braces match the patterns of _FIELDS. `decoder.modality_tokens.{m}` is handled apart (stacked).
KEY_MAP: list[tuple[str, str]] = [
    ("encoder.vit_backbone.cls_token", "phenom.embeddings.cls_token"),
    ("encoder.vit_backbone.pos_embed", "phenom.embeddings.position_embeddings"),
    ("encoder.vit_backbone.patch_embed.proj.{wb}", "phenom.embeddings.patch_embeddings.projection.{wb}"),
    ("encoder.vit_backbone.blocks.{block}.ls.gamma", "phenom.encoder.layers.{block}.layer_scale.gamma"),
    ("encoder.vit_backbone.blocks.{block}.{block_tensor}", "phenom.encoder.layers.{block}.{block_tensor}"),
    ("encoder.vit_backbone.fc_norm.{wb}", "phenom.fc_norm.{wb}"),
    ("encoder_decoder_proj.{wb}", "decoder.encoder_to_decoder.{wb}"),
    ("decoder.mask_token", "decoder.mask_token"),
    ("decoder.placeholder", "decoder.cls_modality_embedding"),
    ("decoder.pos_embeddings", "decoder.position_embeddings"),
    ("decoder.cross_attention.q.weight", "decoder.cross_attention.query.weight"),
    ("decoder.cross_attention.kv.weight", "decoder.cross_attention.key_value.weight"),
    ("decoder.cross_attention.proj.{wb}", "decoder.cross_attention.proj.{wb}"),
    ("decoder.mlp.{fc}.{wb}", "decoder.mlp.{fc}.{wb}"),
    ("decoder.{shared_norm}.{wb}", "decoder.{shared_norm}.{wb}"),
    ("decoder.decoders.{channel}.{block}.{norm}.{wb}", "decoder.layers.{channel}.{block}.{norm}.{wb}"),
    ("decoder.decoders.{channel}.{block}.attn.{attn}.{wb}", "decoder.layers.{channel}.{block}.attention.{attn}.{wb}"),
    ("decoder.decoders.{channel}.{block}.mlp.{fc}.{wb}", "decoder.layers.{channel}.{block}.mlp.{fc}.{wb}"),
    ("decoder_pred.{wb}", "decoder.prediction.{wb}"),
]
_FIELDS = {
    "wb": r"weight|bias",
    "block": r"\d+",
    "channel": r"\d+",
    "fc": r"fc1|fc2",
    "norm": r"norm1|norm2",
    "attn": r"qkv|proj",
    "shared_norm": r"context_norm|query_norm|out_norm",
    "block_tensor": r"mlp_bias|qkv_bias|in_proj\.weight|(?:in_norm|q_norm|k_norm|attn_out_proj|mlp_out_proj)\."
                    r"(?:weight|bias)",
}
LEGACY_MODALITY_KEY = re.compile(r"decoder\.modality_tokens\.(\d+)")
MODALITY_KEY = "decoder.modality_embeddings"
ENCODER_PREFIX = f"{PhenomForMaskedImageModeling.base_model_prefix}."


def _compile(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for field, field_pattern in _FIELDS.items():
        pattern = pattern.replace(re.escape(f"{{{field}}}"), f"(?P<{field}>{field_pattern})")
    return re.compile(pattern)


_LEGACY_TO_PHENOM = [(_compile(legacy), phenom) for legacy, phenom in KEY_MAP]
_PHENOM_TO_LEGACY = [(_compile(phenom), legacy) for legacy, phenom in KEY_MAP]


def _rename(key: str, rules: list[tuple[re.Pattern, str]]) -> str | None:
    for pattern, template in rules:
        match = pattern.fullmatch(key)
        if match:
            return template.format(**match.groupdict())
    return None


def _rename_keys(
    state_dict: Mapping[str, torch.Tensor], rules: list[tuple[re.Pattern, str]], problem: str
) -> dict[str, torch.Tensor]:
    renamed = {key: _rename(key, rules) for key in state_dict}
    unknown = [key for key, new_key in renamed.items() if new_key is None]
    if unknown:
        raise KeyError(f"{problem}: {unknown}")
    return {new_key: state_dict[key] for key, new_key in renamed.items()}


def openphenom_to_phenom_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released (legacy) state dict -> `PhenomForMaskedImageModeling` state dict. Pure; tensors are not copied except
    the per-channel modality tokens `[1, 1, D]`, stacked into `decoder.modality_embeddings` `[num_channels, D]`.

    Raises `KeyError` naming every key outside the OpenPhenom family's layout.
    """
    modality_tokens = {}
    for key, tensor in state_dict.items():
        if match := LEGACY_MODALITY_KEY.fullmatch(key):
            modality_tokens[int(match.group(1))] = tensor
    others = {key: tensor for key, tensor in state_dict.items() if not LEGACY_MODALITY_KEY.fullmatch(key)}
    converted = _rename_keys(others, _LEGACY_TO_PHENOM, "keys outside the OpenPhenom layout")
    if modality_tokens:
        if sorted(modality_tokens) != list(range(len(modality_tokens))):
            raise KeyError(f"decoder.modality_tokens must be numbered 0..n-1, got {sorted(modality_tokens)}")
        rows = [modality_tokens[index].reshape(1, -1) for index in range(len(modality_tokens))]
        converted[MODALITY_KEY] = torch.cat(rows, dim=0)
    return converted


def phenom_to_openphenom_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of [`openphenom_to_phenom_state_dict`] (keys of a `PhenomForMaskedImageModeling`; give an encoder-only
    `PhenomModel` state dict the `phenom.` prefix first)."""
    others = {key: tensor for key, tensor in state_dict.items() if key != MODALITY_KEY}
    converted = _rename_keys(others, _PHENOM_TO_LEGACY, "keys without an OpenPhenom counterpart")
    if MODALITY_KEY in state_dict:
        for index, row in enumerate(state_dict[MODALITY_KEY]):
            converted[f"decoder.modality_tokens.{index}"] = row.reshape(1, 1, -1).clone()
    return converted


def _meta_state_dict(model_class: type[PhenomPreTrainedModel], config: PhenomConfig) -> dict[str, torch.Tensor]:
    """The model's state dict in the MIM key layout, on the meta device (shapes only, nothing allocated)."""
    with torch.device("meta"):
        model = model_class(config)
    prefix = "" if isinstance(model, PhenomForMaskedImageModeling) else ENCODER_PREFIX
    return {prefix + key: tensor for key, tensor in model.state_dict().items()}


def openphenom_shapes(config: PhenomConfig) -> dict[str, torch.Size]:
    """Every key and shape of the released-format state dict of `config`'s full model (encoder and decoder, all
    blocks), derived from the Phenom modules on the meta device."""
    full = PhenomConfig(**{**config.to_dict(), "trim_encoder_blocks": None})
    legacy = phenom_to_openphenom_state_dict(_meta_state_dict(PhenomForMaskedImageModeling, full))
    return {key: tensor.shape for key, tensor in legacy.items()}


# ----------------------------------------------------------------------------- the checked weight reader
class OpenPhenomWeightsError(ValueError):
    """A weight file that is unreadable, unsafe, or does not match the expected layout."""


_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024


def _sniff_format(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head[:4] == b"PK\x03\x04":
        return "torch_zip"
    if len(head) == 9:
        (header_length,) = struct.unpack("<Q", head[:8])
        if header_length <= min(size - 8, _SAFETENSORS_MAX_HEADER) and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"version "):
        raise OpenPhenomWeightsError(
            f"{path} is a Git LFS pointer, not the weights: download the file itself (huggingface_hub does)"
        )
    raise OpenPhenomWeightsError(
        f"{path} is neither a safetensors file nor a torch zip checkpoint (first bytes {head[:8]!r}); refusing to "
        "read it (plain pickles are never loaded)"
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    kind = _sniff_format(path)
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with open(path, "rb") as handle:  # a handle, not a path: torch >= 2.13 routes "*.safetensors" paths elsewhere
            loaded = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, corrupt, or a pickle holding more than tensors
        raise OpenPhenomWeightsError(f"{path} could not be read safely as {kind}: {error}") from error
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise OpenPhenomWeightsError(
            f"{path} holds {type(loaded).__name__}, not a state dict (a mapping of names to tensors, optionally "
            "under 'state_dict')"
        )
    return dict(loaded)


def read_openphenom_weights(
    path: str | os.PathLike,
    expected_shapes: Mapping[str, torch.Size],
    required_keys: set[str] | None = None,
) -> dict[str, torch.Tensor]:
    """The one door for OpenPhenom weights: read and check a released-format weight file.

    The format is sniffed from the bytes: real safetensors, or a torch zip (`{"state_dict": ...}` as released) read
    only with `torch.load(file_handle, weights_only=True)`. Anything else, a truncated file, keys outside
    `expected_shapes`, missing `required_keys` (default: all expected) or a wrong shape raises
    `OpenPhenomWeightsError` naming the file and the keys.

    Returns the legacy state dict (keys of `expected_shapes`).
    """
    path = Path(path)
    if not path.is_file():
        raise OpenPhenomWeightsError(f"weight file {path} does not exist")
    state_dict = _read_state_dict(path)
    required = set(expected_shapes) if required_keys is None else set(required_keys)
    unexpected = sorted(set(state_dict) - set(expected_shapes))
    missing = sorted(required - set(state_dict))
    wrong_shapes = [
        f"{key}: {tuple(tensor.shape)} in the file, {tuple(expected_shapes[key])} expected"
        for key, tensor in state_dict.items()
        if key in expected_shapes and tuple(tensor.shape) != tuple(expected_shapes[key])
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if wrong_shapes:
        problems.append(f"wrong shapes [{'; '.join(wrong_shapes)}]")
    if problems:
        raise OpenPhenomWeightsError(
            f"{path} does not match the configured OpenPhenom model: " + ", ".join(problems)
            + " (does config.json describe these weights?)"
        )
    return state_dict


# ----------------------------------------------------------------------------- Hub resolution and loading
def resolve_openphenom_file(
    name_or_path: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
    subfolder: str = "",
    required: bool = True,
) -> Path | None:
    """Local path of `filename` in a directory or a Hub repo (downloaded to / read from the HF cache through
    `huggingface_hub`; `HF_HUB_OFFLINE=1` reads the cache only). `None` if absent and not `required`."""
    directory = Path(name_or_path)
    if directory.is_dir():
        path = directory / subfolder / filename
        if path.is_file():
            return path
        if required:
            raise FileNotFoundError(f"{path} does not exist")
        return None
    try:
        return Path(
            hf_hub_download(
                str(name_or_path), filename, subfolder=subfolder or None, revision=revision, cache_dir=cache_dir,
                token=token, local_files_only=local_files_only, force_download=force_download,
            )
        )
    except (EntryNotFoundError, LocalEntryNotFoundError):
        if required:
            raise
        return None


_HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "subfolder")


def load_openphenom_state_dict(
    model_class: type[PhenomPreTrainedModel], name_or_path: str | os.PathLike, config: PhenomConfig, **hub_kwargs
) -> dict[str, torch.Tensor]:
    """Resolve, read (checked) and map the released weights to the state dict of `model_class(config)`.

    Decoder tensors (and blocks beyond `trim_encoder_blocks`) are accepted but dropped for an encoder-only class.
    """
    weights = resolve_openphenom_file(name_or_path, WEIGHTS_NAME, **hub_kwargs)
    wanted = _meta_state_dict(model_class, config)
    required = set(phenom_to_openphenom_state_dict(wanted))
    legacy = read_openphenom_weights(weights, openphenom_shapes(config), required_keys=required)
    mapped = openphenom_to_phenom_state_dict(legacy)
    prefix = "" if issubclass(model_class, PhenomForMaskedImageModeling) else ENCODER_PREFIX
    return {key[len(prefix) :]: mapped[key] for key in wanted}


class OpenPhenomLoadingMixin:
    """`from_pretrained` for directories and Hub repos in the released OpenPhenom layout (config.json with model_type
    "MAE", weights in the released format); the loaded model is then loaded by transformers from the mapped state
    dict, so `dtype`, `device_map` and `output_loading_info` work as usual.

    Saved, such a model is a plain Phenom directory without remote code (this module is no part of it); `phenom
    convert` writes the native classes, with their code."""

    _auto_class = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        if pretrained_model_name_or_path is None:  # transformers' own path: config + state_dict given
            return super().from_pretrained(None, *model_args, **kwargs)
        hub_kwargs = {key: kwargs.pop(key) for key in _HUB_KWARGS if key in kwargs}
        if hub_kwargs.get("revision") is None:
            hub_kwargs.pop("revision", None)
        for key in ("proxies", "trust_remote_code", "use_safetensors", "_commit_hash", "code_revision"):
            kwargs.pop(key, None)
        if is_offline_mode():
            hub_kwargs["local_files_only"] = True
        config = kwargs.pop("config", None)
        if not isinstance(config, PreTrainedConfig):
            config, kwargs = cls.config_class.from_pretrained(
                config or pretrained_model_name_or_path, return_unused_kwargs=True, **hub_kwargs, **kwargs
            )
        state_dict = load_openphenom_state_dict(cls, pretrained_model_name_or_path, config, **hub_kwargs)
        loaded = super().from_pretrained(None, *model_args, config=config, state_dict=state_dict, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.config.name_or_path = str(pretrained_model_name_or_path)
        return loaded


class OpenPhenomModel(OpenPhenomLoadingMixin, PhenomModel):
    """`PhenomModel` (the encoder) for the legacy model_type "MAE": `AutoModel.from_pretrained(HUB_REPO_ID)`."""

    config_class = OpenPhenomConfig


class OpenPhenomForMaskedImageModeling(OpenPhenomLoadingMixin, PhenomForMaskedImageModeling):
    """`PhenomForMaskedImageModeling` for the legacy model_type "MAE" (encoder + released decoder)."""

    config_class = OpenPhenomConfig


__all__ = [
    "HUB_REPO_ID",
    "KEY_MAP",
    "OpenPhenomConfig",
    "OpenPhenomForMaskedImageModeling",
    "OpenPhenomModel",
    "OpenPhenomWeightsError",
    "load_openphenom_state_dict",
    "openphenom_shapes",
    "openphenom_to_phenom_state_dict",
    "phenom_to_openphenom_state_dict",
    "read_openphenom_weights",
    "resolve_openphenom_file",
    "translate_openphenom_config",
]
