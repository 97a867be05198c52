"""Configuration of Phenom channel-agnostic and standard MAE vision transformers.

Sizes follow ``reference/paper.md`` §1.1 (CA-MAE-S/16 = OpenPhenom, MAE-L/8 = Phenom-1, MAE-G/8 = Phenom-2) and the
released OpenPhenom model (``reference/openphenom.md`` §3).
"""

from __future__ import annotations

import copy

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

BLOCK_TYPES = ("parallel", "sequential")
DECODER_TYPES = ("channel_agnostic", "standard")
FOURIER_LOSS_MODES = ("reference", "per_patch")
ATTENTION_INITS = ("trunc_normal", "xavier_uniform")

# Each preset names what differs from `PhenomConfig.__init__`'s defaults (the recipe of the released models,
# paper.md §1.2, §1.5: 256 px crops, parallel blocks with qk-norm and LayerScale, CA decoder 512 x 8, mask 0.75,
# Fourier weight 0.01) and its whole geometry; the defaults themselves live in `__init__` only.
PRESETS: dict[str, dict] = {
    # A few-minute CPU model for the demo and tests: the CA-MAE family at a toy width.
    "tiny": dict(
        patch_size=32, num_channels=6, channel_agnostic=True, hidden_size=128, num_hidden_layers=4,
        num_attention_heads=4, intermediate_size=512, drop_path_rate=0.0, decoder_type="channel_agnostic",
        decoder_hidden_size=64, decoder_num_hidden_layers=1, decoder_num_attention_heads=4,
        decoder_intermediate_size=256, decoder_cross_attention_heads=4,
    ),
    # `phenom demo`'s model (train/configs/tiny.yaml): `tiny` on 64 px crops with 8 px patches (the 8 x 8 grid of
    # `tiny`, the patch scale where synth data's masked-patch signal is), Xavier attention inputs, decoder qk-norm and
    # a cross-attention whose keys start equal to its queries, so it learns within 40 steps (docs/design.md, Training).
    "demo": dict(
        image_size=64, patch_size=8, num_channels=6, channel_agnostic=True, hidden_size=128, num_hidden_layers=4,
        num_attention_heads=4, intermediate_size=512, drop_path_rate=0.0, attention_init="xavier_uniform",
        decoder_type="channel_agnostic", decoder_hidden_size=64, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=4, decoder_intermediate_size=256, decoder_cross_attention_heads=4,
        decoder_qk_norm=True, decoder_tied_qk_init=True,
    ),
    # OpenPhenom geometry (openphenom.md §2): position table for 11 channels, CA decoder 512 x 8 per channel.
    "ca-s16": dict(
        patch_size=16, num_channels=11, channel_agnostic=True, hidden_size=384, num_hidden_layers=12,
        num_attention_heads=6, intermediate_size=1536, drop_path_rate=0.1, decoder_type="channel_agnostic",
    ),
    "ca-b16": dict(
        patch_size=16, num_channels=11, channel_agnostic=True, hidden_size=768, num_hidden_layers=12,
        num_attention_heads=12, intermediate_size=3072, drop_path_rate=0.1, decoder_type="channel_agnostic",
    ),
    "l16": dict(
        patch_size=16, num_channels=6, channel_agnostic=False, hidden_size=1024, num_hidden_layers=24,
        num_attention_heads=16, intermediate_size=4096, drop_path_rate=0.3, decoder_type="standard",
    ),
    # Phenom-1 (MAE-L/8): 6-channel patch embedding, standard MAE decoder.
    "l8": dict(
        patch_size=8, num_channels=6, channel_agnostic=False, hidden_size=1024, num_hidden_layers=24,
        num_attention_heads=16, intermediate_size=4096, drop_path_rate=0.3, decoder_type="standard",
    ),
    # Phenom-2 (MAE-G/8): ViT-G geometry of Zhai et al. 2022, decoder 512 x 8.
    "g8": dict(
        patch_size=8, num_channels=6, channel_agnostic=False, hidden_size=1664, num_hidden_layers=48,
        num_attention_heads=16, intermediate_size=8192, drop_path_rate=0.6, decoder_type="standard",
    ),
}


def code_reference(cls: type) -> str:
    """`<file stem>.<class name>`: how `auto_map` and `custom_pipelines` name a class whose source file is saved beside
    a model (the Hub copy of a file keeps its name)."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def _without_registered_pipelines(custom_pipelines: dict) -> dict:
    """`custom_pipelines` less the entries whose class transformers' pipeline registry already runs for that task."""
    from transformers.pipelines import PIPELINE_REGISTRY

    def registered(task: str, entry) -> bool:
        impl = PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl")
        return isinstance(impl, type) and isinstance(entry, dict) and code_reference(impl) == entry.get("impl")

    return {task: entry for task, entry in custom_pipelines.items() if not registered(task, entry)}


class PhenomConfig(PreTrainedConfig):
    r"""
    Configuration of a Phenom masked-autoencoder vision transformer for multi-channel microscopy.

    ```python
    >>> from modeling_phenom import PhenomConfig, PhenomModel
    >>> config = PhenomConfig.from_preset("ca-s16")          # OpenPhenom geometry
    >>> config.hidden_size, config.patch_size
    (384, 16)
    >>> tiny = PhenomConfig.from_preset("tiny", num_hidden_layers=2)
    >>> model = PhenomModel(tiny)
    ```

    Args:
        image_size (`int`, defaults to 256): side of the square training crop in pixels; sizes the stored position
            tables. The model accepts any height and width divisible by `patch_size`.
        patch_size (`int`, defaults to 16): side of a square patch in pixels.
        num_channels (`int`, defaults to 6): channels of a standard model. For a channel-agnostic model only the
            number of channel copies in the legacy position table (11 in OpenPhenom); any channel count is accepted.
        channel_agnostic (`bool`, defaults to `True`): one shared 1-channel patch embedding applied to every channel,
            tokens in channel-major order (openphenom.md §3.2). If `False`, a standard C-channel patch embedding.
        hidden_size (`int`, defaults to 384): width of the encoder tokens.
        num_hidden_layers (`int`, defaults to 12): number of encoder blocks.
        num_attention_heads (`int`, defaults to 6): attention heads per encoder block.
        intermediate_size (`int`, defaults to 1536): width of the MLP hidden layer.
        hidden_act (`str`, defaults to `"gelu"`): MLP activation (exact erf GELU as released).
        block_type (`str`, defaults to `"parallel"`): `"parallel"` = ViT-22B ParallelScalingBlock as released,
            `"sequential"` = pre-norm attention then MLP.
        qk_norm (`bool`, defaults to `True`): per-head LayerNorm on queries and keys.
        qkv_bias (`bool`, defaults to `False`): learned bias on the query/key/value projections.
        layer_scale_init_value (`float` or `None`, defaults to 1e-4): initial LayerScale gamma; `None` disables it.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth rate of the last block (linear in depth).
        legacy_bias_routing (`bool`, defaults to `False`): reproduce timm <= 1.0.24's routing of the parallel block's
            MLP bias onto q/k/v (openphenom.md §3.4). Only for converted OpenPhenom weights.
        layer_norm_eps (`float`, defaults to 1e-6): epsilon of the encoder LayerNorms.
        initializer_range (`float`, defaults to 0.02): std of the truncated normal initialization.
        attention_init (`str`, defaults to `"trunc_normal"`): how attention input projections start. `"trunc_normal"`
            (timm, transformers) like every other linear layer; `"xavier_uniform"` (the MAE of He et al.) for the
            query/key/value projections of the encoder and decoder (the parallel block's fused in-projection, MLP
            input included), while output projections and the pixel head keep the truncated normal, so the first
            loss stays the zero predictor's. Small models start learning masked patches far sooner with it
            (docs/design.md, Training); it only affects fresh weights.
        decoder_type (`str`, defaults to `"channel_agnostic"`): `"channel_agnostic"` = released CA decoder
            (openphenom.md §3.6) or `"standard"` MAE decoder (He et al.).
        decoder_hidden_size (`int`, defaults to 512): width of the decoder tokens.
        decoder_num_hidden_layers (`int`, defaults to 8): decoder blocks (per modality for the CA decoder).
        decoder_num_attention_heads (`int`, defaults to 16): attention heads of the decoder blocks.
        decoder_intermediate_size (`int`, defaults to 2048): decoder MLP hidden width.
        decoder_num_modalities (`int`, defaults to 6): channels the CA decoder reconstructs (one block stack each).
        decoder_cross_attention_heads (`int`, defaults to 8): heads of the CA decoder's shared cross-attention.
        decoder_layer_norm_eps (`float`, defaults to 1e-6): epsilon of the decoder LayerNorms (1e-5 in the
            released OpenPhenom code).
        decoder_qk_norm (`bool`, defaults to `False`): per-head LayerNorm on the queries and keys of every decoder
            attention (the CA decoder's cross-attention included). Off in the released decoders. The CA decoder's
            cross-attention replaces its tokens (no residual), so until its attention depends on position every
            masked token gets the same input; normalized queries and keys start with attention logits of order 1
            instead of ~0.01, and masked patches are learned within tens of steps instead of hundreds.
        decoder_tied_qk_init (`bool`, defaults to `False`): start the CA decoder's cross-attention with its key
            projection equal to its query projection (they train apart from step one). Then `W_q^T W_k` is positive
            semi-definite, so every token starts out attending most to tokens whose position embedding resembles its
            own: the same spot in the other channels and its neighbours (mimetic initialization, Trockman & Kolter
            2023). With `decoder_qk_norm` this is what a masked token needs from the first step. Off in the released
            decoders; only changes a freshly initialized model (checkpoints load as saved).
        mask_ratio (`float`, defaults to 0.75): fraction of patch tokens removed during pretraining.
        fourier_loss_weight (`float`, defaults to 0.01): w in `(1 - w) * MSE + w * Fourier`; must be < 1.
        mask_fourier_loss (`bool`, defaults to `True`): average the Fourier term over masked tokens only.
        fourier_loss_mode (`str`, defaults to `"per_patch"`): `"per_patch"` = FFT of each channel's p x p patch;
            `"reference"` = the released memory reshape (openphenom.md §3.8), CA decoder only.
        trim_encoder_blocks (`int` or `None`): keep only encoder blocks 1..k (paper.md §1.7).
        pixel_scale (`float`, defaults to 255): pixels are divided by this before self-standardization.
    """

    model_type = "phenom"

    def __init__(
        self,
        image_size: int = 256,
        patch_size: int = 16,
        num_channels: int = 6,
        channel_agnostic: bool = True,
        hidden_size: int = 384,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 6,
        intermediate_size: int = 1536,
        hidden_act: str = "gelu",
        block_type: str = "parallel",
        qk_norm: bool = True,
        qkv_bias: bool = False,
        layer_scale_init_value: float | None = 1e-4,
        drop_path_rate: float = 0.1,
        legacy_bias_routing: bool = False,
        layer_norm_eps: float = 1e-6,
        initializer_range: float = 0.02,
        attention_init: str = "trunc_normal",
        decoder_type: str = "channel_agnostic",
        decoder_hidden_size: int = 512,
        decoder_num_hidden_layers: int = 8,
        decoder_num_attention_heads: int = 16,
        decoder_intermediate_size: int = 2048,
        decoder_num_modalities: int = 6,
        decoder_cross_attention_heads: int = 8,
        decoder_layer_norm_eps: float = 1e-6,
        decoder_qk_norm: bool = False,
        decoder_tied_qk_init: bool = False,
        mask_ratio: float = 0.75,
        fourier_loss_weight: float = 0.01,
        mask_fourier_loss: bool = True,
        fourier_loss_mode: str = "per_patch",
        trim_encoder_blocks: int | None = None,
        pixel_scale: float = 255.0,
        **kwargs,
    ):
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.channel_agnostic = channel_agnostic
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.block_type = block_type
        self.qk_norm = qk_norm
        self.qkv_bias = qkv_bias
        self.layer_scale_init_value = layer_scale_init_value
        self.drop_path_rate = drop_path_rate
        self.legacy_bias_routing = legacy_bias_routing
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.attention_init = attention_init
        self.decoder_type = decoder_type
        self.decoder_hidden_size = decoder_hidden_size
        self.decoder_num_hidden_layers = decoder_num_hidden_layers
        self.decoder_num_attention_heads = decoder_num_attention_heads
        self.decoder_intermediate_size = decoder_intermediate_size
        self.decoder_num_modalities = decoder_num_modalities
        self.decoder_cross_attention_heads = decoder_cross_attention_heads
        self.decoder_layer_norm_eps = decoder_layer_norm_eps
        self.decoder_qk_norm = decoder_qk_norm
        self.decoder_tied_qk_init = decoder_tied_qk_init
        self.mask_ratio = mask_ratio
        self.fourier_loss_weight = fourier_loss_weight
        self.mask_fourier_loss = mask_fourier_loss
        self.fourier_loss_mode = fourier_loss_mode
        self.trim_encoder_blocks = trim_encoder_blocks
        self.pixel_scale = pixel_scale
        if kwargs.get("custom_pipelines"):
            # transformers' pipeline() asks for trust_remote_code for every task a config lists here, even when that
            # very pipeline is installed and registered (`import modeling_phenom`); such entries are dropped on load
            # (save_pretrained writes them again), so an installed Phenom runs no remote code.
            kept = _without_registered_pipelines(kwargs.pop("custom_pipelines"))
            if kept:
                kwargs["custom_pipelines"] = kept
        super().__init__(**kwargs)
        self._validate_phenom_fields()

    # ------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides) -> PhenomConfig:
        """The named geometry (`tiny`, `demo`, `ca-s16`, `ca-b16`, `l16`, `l8`, `g8`) with optional field overrides;
        what a preset leaves out is `__init__`'s default."""
        if name not in PRESETS:
            raise ValueError(f"Unknown Phenom preset {name!r}; valid presets: {', '.join(PRESETS)}")
        return cls(**{**copy.deepcopy(PRESETS[name]), **overrides})

    # --------------------------------------------------------------- derived
    @property
    def num_encoder_blocks(self) -> int:
        """Blocks the encoder actually builds (after `trim_encoder_blocks`)."""
        return self.trim_encoder_blocks or self.num_hidden_layers

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def grid_size(self) -> int:
        """Patches per side of the `image_size` training crop."""
        return self.image_size // self.patch_size

    def decoder_layer_config(self) -> PhenomConfig:
        """A derived config sizing the decoder's blocks with the encoder's sequential layer class (STYLE rule 2):
        pre-norm timm `Block`s with qkv bias, qk-norm only with `decoder_qk_norm`, no LayerScale, no stochastic
        depth."""
        return PhenomConfig(
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=self.num_channels,
            channel_agnostic=self.channel_agnostic,
            hidden_size=self.decoder_hidden_size,
            num_hidden_layers=self.decoder_num_hidden_layers,
            num_attention_heads=self.decoder_num_attention_heads,
            intermediate_size=self.decoder_intermediate_size,
            hidden_act=self.hidden_act,
            block_type="sequential",
            qk_norm=self.decoder_qk_norm,
            qkv_bias=True,
            layer_scale_init_value=None,
            drop_path_rate=0.0,
            layer_norm_eps=self.decoder_layer_norm_eps,
            initializer_range=self.initializer_range,
            decoder_type=self.decoder_type,
            decoder_hidden_size=self.decoder_hidden_size,
            decoder_num_attention_heads=self.decoder_num_attention_heads,
            decoder_cross_attention_heads=self.decoder_cross_attention_heads,
            fourier_loss_mode="per_patch",
        )

    # ------------------------------------------------------------ validation
    def _validate_phenom_fields(self) -> None:
        def positive_int(name):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PhenomConfig.{name} must be a positive integer, got {value!r}")

        for name in (
            "image_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
            "decoder_intermediate_size", "decoder_num_modalities", "decoder_cross_attention_heads",
        ):
            positive_int(name)
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be divisible by patch_size {self.patch_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_attention_heads {self.num_attention_heads}"
            )
        for width, heads in (
            ("decoder_hidden_size", "decoder_num_attention_heads"),
            ("decoder_hidden_size", "decoder_cross_attention_heads"),
        ):
            if getattr(self, width) % getattr(self, heads):
                raise ValueError(f"{width} {getattr(self, width)} must be divisible by {heads} {getattr(self, heads)}")
        for width in ("hidden_size", "decoder_hidden_size"):
            if getattr(self, width) % 4:
                raise ValueError(
                    f"{width} must be a multiple of 4 for the 2-D sin-cos positions, got {getattr(self, width)}"
                )
        if self.block_type not in BLOCK_TYPES:
            raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {self.block_type!r}")
        if self.attention_init not in ATTENTION_INITS:
            raise ValueError(f"attention_init must be one of {ATTENTION_INITS}, got {self.attention_init!r}")
        if self.decoder_type not in DECODER_TYPES:
            raise ValueError(f"decoder_type must be one of {DECODER_TYPES}, got {self.decoder_type!r}")
        if self.fourier_loss_mode not in FOURIER_LOSS_MODES:
            raise ValueError(f"fourier_loss_mode must be one of {FOURIER_LOSS_MODES}, got {self.fourier_loss_mode!r}")
        if self.decoder_type == "channel_agnostic" and not self.channel_agnostic:
            raise ValueError(
                "decoder_type 'channel_agnostic' needs a channel-agnostic encoder (channel_agnostic=True)"
            )
        if self.fourier_loss_mode == "reference" and self.decoder_type != "channel_agnostic":
            raise ValueError(
                "fourier_loss_mode 'reference' reproduces the released channel-agnostic decoder's memory reshape and "
                "is only defined for decoder_type 'channel_agnostic'; use 'per_patch' with the standard decoder"
            )
        if self.legacy_bias_routing and self.block_type != "parallel":
            raise ValueError("legacy_bias_routing only applies to block_type 'parallel'")
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"hidden_act {self.hidden_act!r} is not a transformers activation")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.fourier_loss_weight < 1.0:
            raise ValueError(f"fourier_loss_weight must be in [0, 1) (the loss mixes (1 - w) * MSE + w * Fourier), "
                             f"got {self.fourier_loss_weight}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if self.layer_scale_init_value is not None and self.layer_scale_init_value <= 0:
            raise ValueError("layer_scale_init_value must be positive, or None to disable LayerScale")
        for eps in ("layer_norm_eps", "decoder_layer_norm_eps", "initializer_range", "pixel_scale"):
            if not getattr(self, eps) > 0:
                raise ValueError(f"{eps} must be positive, got {getattr(self, eps)}")
        if self.trim_encoder_blocks is not None and not (
            isinstance(self.trim_encoder_blocks, int) and 1 <= self.trim_encoder_blocks <= self.num_hidden_layers
        ):
            raise ValueError(
                f"trim_encoder_blocks must be None or in 1..{self.num_hidden_layers}, got {self.trim_encoder_blocks!r}"
            )


# `save_pretrained` writes this file and names it in `auto_map`, so the Hub loads the config without Phenom installed.
PhenomConfig.register_for_auto_class()

__all__ = ["PhenomConfig", "PRESETS", "code_reference"]
