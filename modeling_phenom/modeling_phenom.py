"""Phenom encoder: channel-agnostic (CA-MAE) and standard multi-channel MAE vision transformers.

Implements the released OpenPhenom encoder (``reference/openphenom.md`` §3.1-3.5): self-standardization, the shared
1-channel patch embedding with channel-major tokens, fixed 2-D sin-cos positions shared by every channel, the
ViT-22B ParallelScalingBlock (fused in-projection, per-head qk LayerNorm, LayerScale) including timm <= 1.0.24's
bias routing, no final norm before pooling, and the ``fc_norm`` head. Also the standard C-channel patch embedding
and the sequential pre-norm block used by the paper's ViT-L/8 and ViT-G/8 (``reference/paper.md`` §1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_phenom import PhenomConfig

# InstanceNorm2d's default epsilon, applied to pixels already divided by `pixel_scale` (openphenom.md §3.1).
SELF_STANDARDIZATION_EPS = 1e-5


# ----------------------------------------------------------------------------- outputs
@dataclass
class PhenomModelOutput(ModelOutput):
    """Output of [`PhenomModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, 1 + num_tokens, hidden_size)`):
            tokens after the last (kept) block, CLS first, then patch tokens in channel-major order
            (`num_tokens = num_channels * tokens_per_channel` for a channel-agnostic model). No final LayerNorm.
        pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            mean of the patch tokens of `last_hidden_state` (CLS excluded, no LayerNorm) = the released `predict`.
        normalized_pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            `fc_norm(pooler_output)`, the released encoder head (openphenom.md §3.5).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): `num_encoder_blocks + 1` tensors of shape
            `(batch_size, 1 + num_tokens, hidden_size)`; entry 0 = tokens with positions, entry k = output of block k.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    normalized_pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------- input checks and standardization
def validate_pixel_values(pixel_values: torch.Tensor, config: PhenomConfig) -> None:
    """Raise `ValueError` naming the problem for input the model would otherwise silently mis-handle."""
    if not isinstance(pixel_values, torch.Tensor):
        raise ValueError(f"pixel_values must be a torch.Tensor of shape [batch, channels, height, width], "
                         f"got {type(pixel_values).__name__}")
    if pixel_values.ndim != 4:
        raise ValueError(
            f"pixel_values must have 4 dimensions [batch, channels, height, width], "
            f"got shape {tuple(pixel_values.shape)}"
            + (" (add a batch dimension with pixel_values[None])" if pixel_values.ndim == 3 else "")
        )
    batch_size, num_channels, height, width = pixel_values.shape
    if not config.channel_agnostic and num_channels != config.num_channels:
        raise ValueError(
            f"this standard (not channel-agnostic) model takes exactly {config.num_channels} channels, "
            f"got {num_channels}"
        )
    if num_channels < 1 or batch_size < 1:
        raise ValueError(f"pixel_values has an empty dimension: shape {tuple(pixel_values.shape)}")
    if height % config.patch_size or width % config.patch_size:
        raise ValueError(
            f"image height and width must be divisible by the patch size {config.patch_size}, got {height} x {width}"
        )
    if pixel_values.dtype == torch.uint8:
        return
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values must be uint8 (0..255) or floating point on the 0..{config.pixel_scale:g} scale, got "
            f"{pixel_values.dtype}; convert 16-bit images to 8-bit with PhenomImageProcessor"
        )
    if not torch.isfinite(pixel_values).all():
        raise ValueError("pixel_values contain NaN or infinite values")
    maximum = pixel_values.amax().item()
    minimum = pixel_values.amin().item()
    if minimum < 0:
        raise ValueError(
            f"pixel_values must be non-negative (0..{config.pixel_scale:g}), got a minimum of {minimum:g}"
        )
    if config.pixel_scale != 1.0 and maximum <= 1.0 and maximum > 0:
        raise ValueError(
            f"float pixel_values have a maximum of {maximum:g} <= 1.0, but the model divides by pixel_scale="
            f"{config.pixel_scale:g}: pass 0..255 values (e.g. uint8), or set pixel_scale=1.0 in the config for "
            "images already scaled to 0..1"
        )
    if maximum > config.pixel_scale:
        raise ValueError(
            f"pixel_values exceed pixel_scale={config.pixel_scale:g} (maximum {maximum:g}); convert 16-bit images to "
            "8-bit with PhenomImageProcessor, or set pixel_scale to the range of your data"
        )


def self_standardize(pixel_values: torch.Tensor, pixel_scale: float) -> torch.Tensor:
    """Divide by `pixel_scale`, then standardize each image and channel over its own pixels (biased variance,
    eps 1e-5 inside the square root), exactly as the released `Normalizer` + `InstanceNorm2d` (openphenom.md §3.1).

    Args:
        pixel_values: `[batch, channels, height, width]`, uint8 or float on the 0..`pixel_scale` scale.
    Returns:
        float32 `[batch, channels, height, width]`, zero mean and unit variance per image and channel.
    """
    scaled = pixel_values.to(torch.float32) / pixel_scale
    variance, mean = torch.var_mean(scaled, dim=(-2, -1), unbiased=False, keepdim=True)
    return (scaled - mean) * torch.rsqrt(variance + SELF_STANDARDIZATION_EPS)


# ----------------------------------------------------------------------------- positions
def sincos_2d_position_embedding(grid_height: int, grid_width: int, embed_dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos positions (openphenom.md §3.3).

    For the patch at (row h, column w) the vector is `[sin(h*omega), cos(h*omega), sin(w*omega), cos(w*omega)]` with
    `omega_k = 10000 ** (-k / (embed_dim / 4))`, computed in float32; patches in row-major order.

    Returns:
        float32 `[grid_height * grid_width, embed_dim]`.
    """
    if embed_dim % 4:
        raise ValueError(f"sin-cos positions need an embedding width divisible by 4, got {embed_dim}")
    quarter = embed_dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    rows = torch.arange(grid_height, dtype=torch.float32)[:, None].expand(grid_height, grid_width).reshape(-1)
    cols = torch.arange(grid_width, dtype=torch.float32)[None, :].expand(grid_height, grid_width).reshape(-1)
    row_angles = rows[:, None] * omega[None, :]
    col_angles = cols[:, None] * omega[None, :]
    return torch.cat([row_angles.sin(), row_angles.cos(), col_angles.sin(), col_angles.cos()], dim=1)


def position_table(grid_size: int, embed_dim: int, copies: int) -> torch.Tensor:
    """The stored `[1, 1 + copies * grid_size**2, embed_dim]` table: a zero row for CLS, then the grid's sin-cos
    positions tiled `copies` times (one per channel slot of a channel-agnostic model)."""
    grid = sincos_2d_position_embedding(grid_size, grid_size, embed_dim)
    return torch.cat([torch.zeros(1, embed_dim), grid.repeat(copies, 1)], dim=0)[None]


# ----------------------------------------------------------------------------- small modules
class PhenomDropPath(nn.Module):
    """Stochastic depth: drop the residual branch of a whole sample with probability `drop_prob` while training."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
        keep = hidden_states.new_empty(shape).bernoulli_(keep_prob)
        return hidden_states * keep / keep_prob

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class PhenomLayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (Touvron et al.; `ls.gamma` in the released weights)."""

    def __init__(self, hidden_size: int, init_value: float):
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((hidden_size,), float(init_value)))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states * self.gamma


def _layer_scale(config: PhenomConfig) -> nn.Module:
    if config.layer_scale_init_value is None:
        return nn.Identity()
    return PhenomLayerScale(config.hidden_size, config.layer_scale_init_value)


def _qk_norm(config: PhenomConfig) -> nn.Module:
    # One LayerNorm over the head dimension, shared by all heads (timm qk_norm).
    if not config.qk_norm:
        return nn.Identity()
    return nn.LayerNorm(config.head_dim, eps=config.layer_norm_eps)


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """SDPA over `[batch, heads, tokens, head_dim]` tensors -> `[batch, tokens, heads * head_dim]`."""
    output = F.scaled_dot_product_attention(query, key, value)
    batch_size, num_heads, num_tokens, head_dim = output.shape
    return output.transpose(1, 2).reshape(batch_size, num_tokens, num_heads * head_dim)


def _split_heads(tensor: torch.Tensor, num_heads: int) -> torch.Tensor:
    batch_size, num_tokens, width = tensor.shape
    return tensor.view(batch_size, num_tokens, num_heads, width // num_heads).transpose(1, 2)


# ----------------------------------------------------------------------------- embeddings
class PhenomPatchEmbeddings(nn.Module):
    """Patchify `[batch, channels, height, width]` standardized images into tokens.

    Channel-agnostic: one `Conv2d(1, hidden_size, patch, stride=patch)` applied to every channel separately; tokens in
    channel-major order (token index = channel * tokens_per_channel + row * grid_width + col), openphenom.md §3.2.
    Standard: one `Conv2d(num_channels, hidden_size, patch, stride=patch)`.
    """

    def __init__(self, config: PhenomConfig):
        super().__init__()
        self.channel_agnostic = config.channel_agnostic
        in_channels = 1 if config.channel_agnostic else config.num_channels
        self.projection = nn.Conv2d(in_channels, config.hidden_size, config.patch_size, stride=config.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Returns `[batch, num_tokens, hidden_size]`."""
        batch_size, num_channels, height, width = pixel_values.shape
        if self.channel_agnostic:
            pixel_values = pixel_values.reshape(batch_size * num_channels, 1, height, width)
        tokens = self.projection(pixel_values).flatten(2).transpose(1, 2)  # [batch * C?, T, D]
        return tokens.reshape(batch_size, -1, tokens.shape[-1])


class PhenomEmbeddings(nn.Module):
    """CLS token + patch tokens + fixed sin-cos positions (the input of block 1, `hidden_states[0]`).

    The stored table `position_embeddings` `[1, 1 + copies * grid**2, hidden_size]` (frozen; `copies` =
    `num_channels` for a channel-agnostic model, as the released checkpoint) serves the training grid; any other grid
    gets the same sin-cos formula for its real rows and columns, and every channel shares the spatial positions.
    """

    def __init__(self, config: PhenomConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = PhenomPatchEmbeddings(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        copies = config.num_channels if config.channel_agnostic else 1
        # Frozen (requires_grad=False) but a parameter, so that checkpoints carry it as the released one does.
        self.position_embeddings = nn.Parameter(
            torch.zeros(1, 1 + copies * config.grid_size**2, config.hidden_size), requires_grad=False
        )

    def patch_positions(self, grid_height: int, grid_width: int) -> torch.Tensor:
        """`[1, grid_height * grid_width, hidden_size]` positions of one channel's patches."""
        if grid_height == grid_width == self.config.grid_size:
            return self.position_embeddings[:, 1 : 1 + grid_height * grid_width]
        table = sincos_2d_position_embedding(grid_height, grid_width, self.config.hidden_size)
        return table.to(self.position_embeddings.device, self.position_embeddings.dtype)[None]

    def forward(self, standardized_pixels: torch.Tensor) -> torch.Tensor:
        """`[batch, channels, height, width]` standardized -> `[batch, 1 + num_tokens, hidden_size]`."""
        batch_size, num_channels, height, width = standardized_pixels.shape
        patch_size = self.config.patch_size
        tokens = self.patch_embeddings(standardized_pixels)
        positions = self.patch_positions(height // patch_size, width // patch_size)
        if self.config.channel_agnostic:
            tokens = (tokens.view(batch_size, num_channels, -1, tokens.shape[-1]) + positions[:, None]).flatten(1, 2)
        else:
            tokens = tokens + positions
        cls_tokens = (self.cls_token + self.position_embeddings[:, :1]).expand(batch_size, -1, -1)
        return torch.cat([cls_tokens, tokens], dim=1)


# ----------------------------------------------------------------------------- blocks
class PhenomParallelLayer(GradientCheckpointingLayer):
    """ViT-22B parallel block as released (timm `ParallelScalingBlock`, openphenom.md §3.4).

    `x + drop_path(gamma * (attn(LN(x)) + mlp(LN(x))))` where one fused projection `in_proj` produces
    `[mlp_in | q | k | v]`. With `legacy_bias_routing` the bias vector is `concat(qkv_bias, mlp_bias)` although the
    output is split MLP-first (timm <= 1.0.24); otherwise `concat(mlp_bias, qkv_bias)` (the fix of timm 1.0.25).
    """

    def __init__(self, config: PhenomConfig, drop_path_rate: float = 0.0):
        super().__init__()
        hidden_size, intermediate_size = config.hidden_size, config.intermediate_size
        self.num_heads = config.num_attention_heads
        self.legacy_bias_routing = config.legacy_bias_routing
        self.split_sizes = [intermediate_size, hidden_size, hidden_size, hidden_size]
        self.in_norm = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.in_proj = nn.Linear(hidden_size, intermediate_size + 3 * hidden_size, bias=False)
        self.mlp_bias = nn.Parameter(torch.zeros(intermediate_size))
        if config.qkv_bias:
            self.qkv_bias = nn.Parameter(torch.zeros(3 * hidden_size))
        else:
            self.register_buffer("qkv_bias", torch.zeros(3 * hidden_size), persistent=False)
        self.q_norm = _qk_norm(config)
        self.k_norm = _qk_norm(config)
        self.attn_out_proj = nn.Linear(hidden_size, hidden_size)
        self.mlp_out_proj = nn.Linear(intermediate_size, hidden_size)
        self.activation = ACT2FN[config.hidden_act]
        self.layer_scale = _layer_scale(config)
        self.drop_path = PhenomDropPath(drop_path_rate)

    def fused_bias(self) -> torch.Tensor:
        if self.legacy_bias_routing:
            return torch.cat([self.qkv_bias, self.mlp_bias])
        return torch.cat([self.mlp_bias, self.qkv_bias])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        projected = F.linear(self.in_norm(hidden_states), self.in_proj.weight, self.fused_bias())
        mlp_in, query, key, value = projected.split(self.split_sizes, dim=-1)
        query = self.q_norm(_split_heads(query, self.num_heads))
        key = self.k_norm(_split_heads(key, self.num_heads))
        attention = _attend(query, key, _split_heads(value, self.num_heads))
        branch = self.attn_out_proj(attention) + self.mlp_out_proj(self.activation(mlp_in))
        return hidden_states + self.drop_path(self.layer_scale(branch))


class PhenomAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection and optional per-head qk LayerNorm (timm `Attention`)."""

    def __init__(self, config: PhenomConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.q_norm = _qk_norm(config)
        self.k_norm = _qk_norm(config)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        query, key, value = self.qkv(hidden_states).chunk(3, dim=-1)
        query = self.q_norm(_split_heads(query, self.num_heads))
        key = self.k_norm(_split_heads(key, self.num_heads))
        return self.proj(_attend(query, key, _split_heads(value, self.num_heads)))


class PhenomMLP(nn.Module):
    """`fc2(act(fc1(x)))`."""

    def __init__(self, config: PhenomConfig, hidden_size: int | None = None, intermediate_size: int | None = None):
        super().__init__()
        hidden_size = hidden_size or config.hidden_size
        self.fc1 = nn.Linear(hidden_size, intermediate_size or config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(intermediate_size or config.intermediate_size, hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(hidden_states)))


class PhenomSequentialLayer(GradientCheckpointingLayer):
    """Pre-norm block: `x + ls1(attn(LN(x)))`, then `x + ls2(mlp(LN(x)))` (timm `Block`; the decoders' block)."""

    def __init__(self, config: PhenomConfig, drop_path_rate: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = PhenomAttention(config)
        self.layer_scale1 = _layer_scale(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = PhenomMLP(config)
        self.layer_scale2 = _layer_scale(config)
        self.drop_path = PhenomDropPath(drop_path_rate)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.drop_path(self.layer_scale1(self.attention(self.norm1(hidden_states))))
        return hidden_states + self.drop_path(self.layer_scale2(self.mlp(self.norm2(hidden_states))))


LAYER_CLASSES = {"parallel": PhenomParallelLayer, "sequential": PhenomSequentialLayer}


class PhenomEncoder(nn.Module):
    """The stack of encoder blocks; stochastic depth grows linearly from 0 to `drop_path_rate` over the full depth."""

    def __init__(self, config: PhenomConfig):
        super().__init__()
        layer_class = LAYER_CLASSES[config.block_type]
        depth = config.num_hidden_layers
        rates = [config.drop_path_rate * index / max(depth - 1, 1) for index in range(depth)]
        self.layers = nn.ModuleList(layer_class(config, rates[index]) for index in range(config.num_encoder_blocks))
        self.gradient_checkpointing = False

    def forward(
        self, hidden_states: torch.Tensor, output_hidden_states: bool = False, num_blocks: int | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Run blocks 1..`num_blocks` (all by default). Returns the last tokens and, if asked, every block's input
        and output (`num_blocks + 1` tensors)."""
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers[:num_blocks]:
            hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
        return hidden_states, all_hidden_states


# ----------------------------------------------------------------------------- pooling
def pool_patch_tokens(hidden_state: torch.Tensor) -> torch.Tensor:
    """`[batch, 1 + num_tokens, D]` -> `[batch, D]`: mean of the patch tokens, CLS excluded (the released
    `predict`)."""
    return hidden_state[:, 1:].mean(dim=1)


def pool_per_channel(hidden_state: torch.Tensor, num_channels: int) -> torch.Tensor:
    """`[batch, 1 + C * T, D]` channel-major tokens -> `[batch, C * D]`: each channel's token mean, concatenated in
    channel order (the released `return_channelwise_embeddings=True`, with T taken from the real grid)."""
    batch_size, num_tokens, hidden_size = hidden_state.shape
    if (num_tokens - 1) % num_channels:
        raise ValueError(f"{num_tokens - 1} patch tokens cannot be split evenly into {num_channels} channels")
    per_channel = hidden_state[:, 1:].reshape(batch_size, num_channels, -1, hidden_size).mean(dim=2)
    return per_channel.reshape(batch_size, num_channels * hidden_size)


# ----------------------------------------------------------------------------- models
class PhenomPreTrainedModel(PreTrainedModel):
    config_class = PhenomConfig
    base_model_prefix = "phenom"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["PhenomEmbeddings", "PhenomParallelLayer", "PhenomSequentialLayer"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, PhenomPatchEmbeddings):
            # MAE: the patch projection is initialized like a linear layer (He et al.).
            init.xavier_uniform_(module.projection.weight.view(module.projection.weight.shape[0], -1))
            init.zeros_(module.projection.bias)
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, PhenomLayerScale):
            init.constant_(module.gamma, module.init_value)
        elif isinstance(module, PhenomParallelLayer):
            init.zeros_(module.mlp_bias)
            init.zeros_(module.qkv_bias)
        elif isinstance(module, PhenomEmbeddings):
            init.normal_(module.cls_token, std=std)
            # Fixed sin-cos table, never trained (openphenom.md §3.3).
            copies = self.config.num_channels if self.config.channel_agnostic else 1
            table = position_table(self.config.grid_size, self.config.hidden_size, copies)
            init.copy_(module.position_embeddings, table.to(module.position_embeddings.dtype))


class PhenomModel(PhenomPreTrainedModel):
    """The Phenom encoder (AutoModel).

    Input `pixel_values` `[batch, channels, height, width]`: uint8 (canonical) or float on the 0..`pixel_scale`
    scale. The model self-standardizes each image and channel; it never masks.

    ```python
    >>> import torch
    >>> from modeling_phenom import PhenomConfig, PhenomModel
    >>> model = PhenomModel(PhenomConfig.from_preset("tiny")).eval()
    >>> pixels = torch.randint(0, 256, (2, 6, 256, 256), dtype=torch.uint8)
    >>> with torch.inference_mode():
    ...     out = model(pixels)
    >>> out.pooler_output.shape
    torch.Size([2, 128])
    ```
    """

    # A masked-image-modeling checkpoint loads into the encoder alone without reporting its decoder.
    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^encoder_to_decoder\.", r"^decoder_prediction\."]

    def __init__(self, config: PhenomConfig):
        super().__init__(config)
        self.embeddings = PhenomEmbeddings(config)
        self.encoder = PhenomEncoder(config)
        self.fc_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        if config.trim_encoder_blocks is not None:
            # Blocks beyond the trim point in a full checkpoint are dropped on purpose.
            dropped = "|".join(str(index) for index in range(config.trim_encoder_blocks, config.num_hidden_layers))
            if dropped:
                self._keys_to_ignore_on_load_unexpected = list(self._keys_to_ignore_on_load_unexpected) + [
                    rf"(^|\.)encoder\.layers\.({dropped})\."
                ]
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    @property
    def num_blocks(self) -> int:
        return len(self.encoder.layers)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Validate, self-standardize and tokenize: `[batch, C, H, W]` -> `[batch, 1 + num_tokens, hidden_size]`."""
        validate_pixel_values(pixel_values, self.config)
        standardized = self_standardize(pixel_values, self.config.pixel_scale)
        return self.embeddings(standardized.to(self.embeddings.cls_token.dtype))

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> PhenomModelOutput | tuple:
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        tokens = self.embed(pixel_values)
        last_hidden_state, hidden_states = self.encoder(tokens, output_hidden_states=output_hidden_states)
        pooled = pool_patch_tokens(last_hidden_state)
        output = PhenomModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            normalized_pooler_output=self.fc_norm(pooled),
            hidden_states=hidden_states,
        )
        return output if return_dict else output.to_tuple()

    # --------------------------------------------------------------- public embedding API (used by eval/)
    def resolve_blocks(self, blocks: str | int | Iterable[int]) -> list[int]:
        """`"last"`, `"all"`, an int or an iterable of ints -> sorted block numbers in 1..num_blocks."""
        if blocks == "last":
            return [self.num_blocks]
        if blocks == "all":
            return list(range(1, self.num_blocks + 1))
        chosen = sorted({int(blocks)} if isinstance(blocks, int) else {int(block) for block in blocks})
        invalid = [block for block in chosen if not 1 <= block <= self.num_blocks]
        if invalid or not chosen:
            raise ValueError(
                f"blocks must be in 1..{self.num_blocks} (blocks are numbered from 1), got {invalid or chosen}"
            )
        return chosen

    def get_block_embeddings(
        self, pixel_values: torch.Tensor, blocks: str | int | Iterable[int] = "all", per_channel: bool = False
    ) -> dict[int, torch.Tensor]:
        """Pooled embeddings of the chosen blocks from one forward pass that stops at the deepest one.

        Returns `{block: [batch, hidden_size]}` (patch-token mean), or `[batch, C * hidden_size]` with `per_channel`.
        """
        chosen = self.resolve_blocks(blocks)
        _, hidden_states = self.encoder(self.embed(pixel_values), output_hidden_states=True, num_blocks=chosen[-1])
        if per_channel:
            num_channels = pixel_values.shape[1]
            return {block: pool_per_channel(hidden_states[block], num_channels) for block in chosen}
        return {block: pool_patch_tokens(hidden_states[block]) for block in chosen}

    def get_channelwise_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`[batch, C * hidden_size]`: per-channel token means of the last block, channel-major."""
        return self.get_block_embeddings(pixel_values, blocks="last", per_channel=True)[self.num_blocks]


__all__ = [
    "PhenomModelOutput",
    "PhenomPreTrainedModel",
    "PhenomModel",
    "PhenomEmbeddings",
    "PhenomPatchEmbeddings",
    "PhenomParallelLayer",
    "PhenomSequentialLayer",
    "PhenomAttention",
    "PhenomMLP",
    "PhenomEncoder",
    "PhenomDropPath",
    "PhenomLayerScale",
    "validate_pixel_values",
    "self_standardize",
    "sincos_2d_position_embedding",
    "position_table",
    "pool_patch_tokens",
    "pool_per_channel",
]
