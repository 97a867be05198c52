"""Phenom encoder: channel-agnostic (CA-MAE) and standard multi-channel MAE vision transformers.

Implements the released OpenPhenom encoder (``reference/openphenom.md`` §3.1-3.5): self-standardization, the shared
1-channel patch embedding with channel-major tokens, fixed 2-D sin-cos positions shared by every channel, the
ViT-22B ParallelScalingBlock (fused in-projection, per-head qk LayerNorm, LayerScale) including timm <= 1.0.24's
bias routing, no final norm before pooling, and the ``fc_norm`` head. Also the standard C-channel patch embedding
and the sequential pre-norm block used by the paper's ViT-L/8 and ViT-G/8 (``reference/paper.md`` §1).

Masked image modeling (``reference/openphenom.md`` §3.6-3.8, ``reference/paper.md`` §1.4-1.5): joint random masking
over all channel x position tokens, the released channel-agnostic decoder (shared cross-attention and MLP, one block
stack per channel, shared pixel head), the standard MAE decoder of He et al., and the MSE + Fourier loss.

Hub-native: `save_pretrained` writes this file and the files it imports (config, image processor, pipeline) beside
the weights, with `auto_map` and `custom_pipelines` in `config.json`, so `AutoModel.from_pretrained(dir,
trust_remote_code=True)` and `pipeline(..., trust_remote_code=True)` work where Phenom is not installed. These files
import only each other, transformers, torch and numpy (Pillow, for image files, only where available).
"""

from __future__ import annotations

import math
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

from .configuration_phenom import PhenomConfig, code_reference
from .image_processing_phenom import PhenomImageProcessor
from .pipeline_phenom import custom_pipelines

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
        attentions (`tuple(torch.FloatTensor)`, *optional*): with `output_attentions`, `num_encoder_blocks` tensors of
            shape `(batch_size, num_attention_heads, 1 + num_tokens, 1 + num_tokens)`: block k's softmax attention
            weights (entry k - 1), each row (query) summing to 1.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    normalized_pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class PhenomForMaskedImageModelingOutput(ModelOutput):
    """Output of [`PhenomForMaskedImageModeling`].

    `num_tokens = num_channels * tokens_per_channel` for a channel-agnostic encoder, `tokens_per_channel` otherwise.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): `(1 - w) * reconstruction_loss + w * fourier_loss` with
            `w = config.fourier_loss_weight` (just `reconstruction_loss` when w is 0). `None` when no token is masked.
        reconstruction_loss (`torch.FloatTensor` of shape `()`, *optional*): mean squared error per token (mean over
            its pixels), averaged over the masked tokens of the batch, on the self-standardized image. `None` when no
            token is masked.
        fourier_loss (`torch.FloatTensor` of shape `()`, *optional*): the unweighted Fourier term (L1 between FFT
            magnitudes, `config.fourier_loss_mode`), averaged over masked tokens if `config.mask_fourier_loss`, else
            over all. `None` when w is 0 or no token is masked.
        reconstruction (`torch.FloatTensor`): the decoder's prediction for every token in the original order, in
            self-standardized pixel units: `(batch_size, num_channels * tokens_per_channel, patch_size**2)` for the
            channel-agnostic decoder (one channel's patch per token, pixels row-major),
            `(batch_size, tokens_per_channel, patch_size**2 * num_channels)` for the standard decoder (pixels
            row-major, channel last). [`PhenomForMaskedImageModeling.reconstruction_to_images`] makes images of it.
        mask (`torch.FloatTensor` of shape `(batch_size, num_tokens)`): 1 for a removed (masked) token, 0 for a
            kept one, in the original token order.
        ids_restore (`torch.LongTensor` of shape `(batch_size, num_tokens)`): `argsort(argsort(noise))`: the
            position of each original token in the shuffled order (it un-shuffles the decoder input).
        latent (`torch.FloatTensor` of shape `(batch_size, 1 + num_kept, hidden_size)`): encoder output, CLS first,
            then the kept tokens in shuffled (`argsort(noise)`) order, as the released model (no final LayerNorm).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): the encoder's `num_encoder_blocks + 1` hidden states
            of the kept tokens (shape of `latent`), when asked.
        attentions (`tuple(torch.FloatTensor)`, *optional*): with `output_attentions`, the encoder's attention
            weights over the kept tokens, one `(batch_size, num_attention_heads, 1 + num_kept, 1 + num_kept)` tensor
            per block (the decoder's attentions are not returned, as in ViTMAE).
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    fourier_loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    latent: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class PhenomLossTerms:
    """The terms of the MAE objective (scalars, or `None` when there is nothing to average or w is 0)."""

    loss: torch.Tensor | None
    reconstruction_loss: torch.Tensor | None
    fourier_loss: torch.Tensor | None


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
    _check_pixel_range(pixel_values, config.pixel_scale)


def _check_pixel_range(pixel_values: torch.Tensor, pixel_scale: float) -> None:
    """The data checks of float `pixel_values`: finite, non-negative, at most `pixel_scale`, and (unless
    `pixel_scale` is 1) not scaled to 0..1.

    Eager: `ValueError` naming the problem and the offending value. Traced (`torch.export`, `torch.compile`): a Python
    branch on data would break the trace, so each rule becomes a graph assertion (`torch._assert_async`) that raises
    `RuntimeError` with the same message, without the value, when the exported program runs on such input.
    """
    minimum, maximum = pixel_values.amin(), pixel_values.amax()
    # (holds, message with a {detail} slot, the detail: the offending value, eager only)
    rules = [
        (torch.isfinite(pixel_values).all(), "pixel_values contain NaN or infinite values{detail}", ""),
        (
            minimum >= 0,
            f"pixel_values must be non-negative (0..{pixel_scale:g}){{detail}}",
            ", got a minimum of {minimum:g}",
        ),
    ]
    if pixel_scale != 1.0:
        rules.append((
            (maximum > 1.0) | (maximum <= 0),
            f"float pixel_values have a maximum{{detail}} <= 1.0, but the model divides by pixel_scale="
            f"{pixel_scale:g}: pass 0..255 values (e.g. uint8), or set pixel_scale=1.0 in the config for images "
            "already scaled to 0..1",
            " of {maximum:g}",
        ))
    rules.append((
        maximum <= pixel_scale,
        f"pixel_values exceed pixel_scale={pixel_scale:g}{{detail}}; convert 16-bit images to 8-bit with "
        "PhenomImageProcessor, or set pixel_scale to the range of your data",
        " (maximum {maximum:g})",
    ))
    if torch.compiler.is_compiling():
        for holds, message, _ in rules:
            torch._assert_async(holds, message.format(detail=""))
        return
    passed = torch.stack([holds for holds, _, _ in rules]).tolist()  # one device sync for every rule
    for ok, (_, message, detail) in zip(passed, rules, strict=True):
        if not ok:
            values = {"minimum": minimum.item(), "maximum": maximum.item()}
            raise ValueError(message.format(detail=detail.format(**values)))


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


def grid_positions(table: torch.Tensor, training_grid: int, grid_height: int, grid_width: int) -> torch.Tensor:
    """`[grid_height * grid_width, width]` positions of one channel's patches: rows `1..` of a stored
    `[1, 1 + copies * training_grid**2, width]` table at the training grid (bit-exact with a loaded checkpoint), the
    sin-cos formula for any other grid."""
    if grid_height == grid_width == training_grid:
        return table[0, 1 : 1 + grid_height * grid_width]
    positions = sincos_2d_position_embedding(grid_height, grid_width, table.shape[-1])
    return positions.to(table.device, table.dtype)


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


class PhenomHeadNorm(nn.LayerNorm):
    """LayerNorm over the head dimension, shared by all heads (timm `qk_norm`): `[batch, heads, tokens, head_dim]` ->
    the same shape, in the dtype of its input.

    Under autocast (bf16 or fp16) the queries and keys arrive in the reduced dtype from the in-projection, and SDPA
    takes them in that dtype. CUDA autocast runs `layer_norm` in float32 (its float32 op list): a float32 copy of q and
    k in, a float32 output, and a second copy back to the reduced dtype for SDPA, four extra passes over
    `[batch, tokens, hidden_size]` per block (CPU autocast already keeps it in the input dtype). So a reduced-precision
    input is normalized in its own dtype (statistics in float32 inside the kernel) with the weights cast to it, on
    every device; an input in the weights' dtype (float32 inference, a model cast to bf16) takes the plain LayerNorm,
    so float32 results are unchanged.
    """

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hidden_states.dtype == self.weight.dtype:
            return super().forward(hidden_states)
        dtype = hidden_states.dtype
        with torch.autocast(hidden_states.device.type, enabled=False):
            return F.layer_norm(
                hidden_states, self.normalized_shape, self.weight.to(dtype), self.bias.to(dtype), self.eps
            )


def _head_norm(enabled: bool, head_dim: int, eps: float) -> nn.Module:
    # Identity when disabled.
    return PhenomHeadNorm(head_dim, eps=eps) if enabled else nn.Identity()


def _qk_norm(config: PhenomConfig) -> nn.Module:
    return _head_norm(config.qk_norm, config.head_dim, config.layer_norm_eps)


def _attend(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, output_attentions: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention over `[batch, heads, tokens, head_dim]` tensors -> (`[batch, queries, heads * head_dim]`, weights).

    SDPA (no weights) unless `output_attentions`: then the softmax is computed explicitly, the same math up to
    rounding, and its weights `[batch, heads, queries, keys]` are returned too (only when asked: the explicit path
    materializes them and is slower).
    """
    if output_attentions:
        weights = torch.softmax((query * query.shape[-1] ** -0.5) @ key.transpose(-2, -1), dim=-1)
        output = weights @ value
    else:
        weights, output = None, F.scaled_dot_product_attention(query, key, value)
    batch_size, num_heads, num_tokens, head_dim = output.shape
    return output.transpose(1, 2).reshape(batch_size, num_tokens, num_heads * head_dim), weights


def _split_heads(tensor: torch.Tensor, num_heads: int) -> torch.Tensor:
    batch_size, num_tokens, width = tensor.shape
    return tensor.view(batch_size, num_tokens, num_heads, width // num_heads).transpose(1, 2)


# In-place forms of the activations of `ACT2FN` that the parallel block may apply to its fused projection when no
# gradient is needed (the same functions: exact erf GELU for "gelu").
INPLACE_ACTIVATIONS = {"gelu": torch.ops.aten.gelu_, "relu": torch.relu_, "silu": lambda tensor: F.silu(tensor, True)}


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
        return grid_positions(self.position_embeddings, self.config.grid_size, grid_height, grid_width)[None]

    def forward(self, standardized_pixels: torch.Tensor) -> torch.Tensor:
        """`[batch, channels, height, width]` standardized -> `[batch, 1 + num_tokens, hidden_size]` (in the dtype of
        the model's weights)."""
        batch_size, num_channels, height, width = standardized_pixels.shape
        patch_size = self.config.patch_size
        tokens = self.patch_embeddings(standardized_pixels.to(self.cls_token.dtype))
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
        self.in_proj.is_attention_input = True  # `attention_init` (PhenomConfig) applies to it
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
        self.inplace_activation = INPLACE_ACTIVATIONS.get(config.hidden_act)
        self.layer_scale = _layer_scale(config)
        self.drop_path = PhenomDropPath(drop_path_rate)

    def fused_bias(self) -> torch.Tensor:
        if self.legacy_bias_routing:
            return torch.cat([self.qkv_bias, self.mlp_bias])
        return torch.cat([self.mlp_bias, self.qkv_bias])

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """`[batch, tokens, hidden_size]` -> the same shape; with `output_attentions`, `(tokens, attention weights
        [batch, heads, tokens, tokens])`."""
        batch_size, num_tokens, hidden_size = hidden_states.shape
        projected = F.linear(self.in_norm(hidden_states), self.in_proj.weight, self.fused_bias())
        mlp_in, query, key, value = projected.split(self.split_sizes, dim=-1)
        query = self.q_norm(_split_heads(query, self.num_heads))
        key = self.k_norm(_split_heads(key, self.num_heads))
        attention, weights = _attend(query, key, _split_heads(value, self.num_heads), output_attentions)
        if self.inplace_activation is not None and not (torch.is_grad_enabled() and projected.requires_grad):
            # Nothing to keep for a backward pass: activate the MLP slice of `projected` in place instead of
            # allocating a new [tokens, intermediate_size] tensor (bench/: a fresh one of that size costs page faults
            # worth a few % of the block at batch 8; docs/performance.md).
            activated = self.inplace_activation(mlp_in)
        else:
            activated = self.activation(mlp_in)
        # Both out-projections write one tensor: the MLP's matmul accumulates onto the attention's (addmm), with the
        # two biases added once, instead of two outputs and a sum.
        branch = F.linear(attention, self.attn_out_proj.weight, self.attn_out_proj.bias + self.mlp_out_proj.bias)
        branch = torch.addmm(
            branch.view(-1, hidden_size), activated.reshape(-1, activated.shape[-1]), self.mlp_out_proj.weight.t()
        ).view(batch_size, num_tokens, hidden_size)
        if isinstance(self.layer_scale, PhenomLayerScale) and not (self.training and self.drop_path.drop_prob):
            hidden_states = torch.addcmul(hidden_states, branch, self.layer_scale.gamma)  # scale and residual at once
        else:
            hidden_states = hidden_states + self.drop_path(self.layer_scale(branch))
        return (hidden_states, weights) if output_attentions else hidden_states


class PhenomAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection and optional per-head qk LayerNorm (timm `Attention`)."""

    def __init__(self, config: PhenomConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.qkv.is_attention_input = True  # `attention_init` (PhenomConfig) applies to it
        self.q_norm = _qk_norm(config)
        self.k_norm = _qk_norm(config)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`[batch, tokens, hidden_size]` -> (the same shape, weights `[batch, heads, tokens, tokens]` or `None`)."""
        query, key, value = self.qkv(hidden_states).chunk(3, dim=-1)
        query = self.q_norm(_split_heads(query, self.num_heads))
        key = self.k_norm(_split_heads(key, self.num_heads))
        attention, weights = _attend(query, key, _split_heads(value, self.num_heads), output_attentions)
        return self.proj(attention), weights


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

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """`[batch, tokens, hidden_size]` -> the same shape; with `output_attentions`, `(tokens, attention weights
        [batch, heads, tokens, tokens])`."""
        attention, weights = self.attention(self.norm1(hidden_states), output_attentions)
        hidden_states = hidden_states + self.drop_path(self.layer_scale1(attention))
        hidden_states = hidden_states + self.drop_path(self.layer_scale2(self.mlp(self.norm2(hidden_states))))
        return (hidden_states, weights) if output_attentions else hidden_states


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
        self,
        hidden_states: torch.Tensor,
        output_hidden_states: bool = False,
        num_blocks: int | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """Run blocks 1..`num_blocks` (all by default). Returns the last tokens, every block's input and output
        (`num_blocks + 1` tensors) if `output_hidden_states`, and every block's attention weights (`num_blocks`
        tensors `[batch, heads, tokens, tokens]`) if `output_attentions`."""
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers[:num_blocks]:
            if output_attentions:
                hidden_states, weights = layer(hidden_states, output_attentions=True)
                all_attentions = all_attentions + (weights,)
            else:
                hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
        return hidden_states, all_hidden_states, all_attentions


# ----------------------------------------------------------------------------- masking, patches, loss
def random_masking(
    tokens: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None, num_prefix_tokens: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Joint random masking over all patch tokens (openphenom.md §3.7, paper.md §1.5).

    `argsort(noise)` ascending shuffles the patch tokens; the first `int(num_tokens * (1 - mask_ratio))` are kept,
    still in that shuffled order (the released encoder sees them so). Prefix tokens (CLS) are never masked and stay
    in front; one gather builds the result.

    Args:
        tokens: `[batch, num_prefix_tokens + num_tokens, width]`: prefix tokens, then the patch tokens
            (channel-major for a channel-agnostic model).
        mask_ratio: fraction of the patch tokens to remove, in [0, 1).
        noise: optional `[batch, num_tokens]`; `torch.rand` if `None`. Pass it for a deterministic mask.
        num_prefix_tokens: leading tokens that are always kept (1 for CLS).
    Returns:
        `kept` `[batch, num_prefix_tokens + num_kept, width]`, `mask` `[batch, num_tokens]` (1 = removed, dtype of
        `tokens`) and `ids_restore` `[batch, num_tokens]` int64 (= `argsort(argsort(noise))`).
    """
    batch_size, num_all_tokens, width = tokens.shape
    num_tokens = num_all_tokens - num_prefix_tokens
    num_kept = int(num_tokens * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(batch_size, num_tokens, device=tokens.device)
    elif tuple(noise.shape) != (batch_size, num_tokens):
        raise ValueError(
            f"noise must have shape [batch, num_tokens] = [{batch_size}, {num_tokens}] (one value per patch token of "
            f"every channel, CLS excluded), got {tuple(noise.shape)}"
        )
    ids_shuffle = torch.argsort(noise.to(tokens.device), dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :num_kept] + num_prefix_tokens
    if num_prefix_tokens:
        prefix = torch.arange(num_prefix_tokens, device=tokens.device).expand(batch_size, -1)
        ids_keep = torch.cat([prefix, ids_keep], dim=1)
    kept = torch.gather(tokens, 1, ids_keep[..., None].expand(-1, -1, width))
    # A token is removed iff its place in the shuffled order is past the kept prefix: no scatter or gather needed.
    mask = (ids_restore >= num_kept).to(tokens.dtype)
    return kept, mask, ids_restore


def restore_token_order(kept: torch.Tensor, mask_token: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """Append `mask_token` copies for the removed tokens and un-shuffle: `[batch, num_kept, width]` ->
    `[batch, num_tokens, width]` in the original token order (one gather)."""
    batch_size, num_kept, width = kept.shape
    num_tokens = ids_restore.shape[1]
    if num_kept < num_tokens:
        kept = torch.cat([kept, mask_token.to(kept.dtype).expand(batch_size, num_tokens - num_kept, width)], dim=1)
    return torch.gather(kept, 1, ids_restore[..., None].expand(-1, -1, width))


def patchify(images: torch.Tensor, patch_size: int, channel_agnostic: bool) -> torch.Tensor:
    """Cut `[batch, C, H, W]` images into the decoder's token layout (the released `flatten_images`).

    Returns `[batch, C * T, p * p]` (token order channel, row, column; pixels row-major in the patch) if
    `channel_agnostic`, else `[batch, T, p * p * C]` (pixels row-major, channel last); T = (H / p) * (W / p).
    """
    batch_size, num_channels, height, width = images.shape
    grid_height, grid_width = height // patch_size, width // patch_size
    patches = images.reshape(batch_size, num_channels, grid_height, patch_size, grid_width, patch_size)
    if channel_agnostic:
        patches = patches.permute(0, 1, 2, 4, 3, 5)  # [N, C, gh, gw, p, p]
        return patches.reshape(batch_size, num_channels * grid_height * grid_width, patch_size * patch_size)
    patches = patches.permute(0, 2, 4, 3, 5, 1)  # [N, gh, gw, p, p, C]
    return patches.reshape(batch_size, grid_height * grid_width, patch_size * patch_size * num_channels)


def unpatchify(
    tokens: torch.Tensor, patch_size: int, num_channels: int, grid_height: int, grid_width: int, channel_agnostic: bool
) -> torch.Tensor:
    """Inverse of [`patchify`]: decoder token layout -> `[batch, num_channels, grid_height * p, grid_width * p]`."""
    batch_size = tokens.shape[0]
    if channel_agnostic:
        patches = tokens.reshape(batch_size, num_channels, grid_height, grid_width, patch_size, patch_size)
        patches = patches.permute(0, 1, 2, 4, 3, 5)
    else:
        patches = tokens.reshape(batch_size, grid_height, grid_width, patch_size, patch_size, num_channels)
        patches = patches.permute(0, 5, 1, 3, 2, 4)
    return patches.reshape(batch_size, num_channels, grid_height * patch_size, grid_width * patch_size)


def fourier_token_error(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    patch_size: int,
    num_channels: int,
    channel_agnostic: bool,
) -> torch.Tensor:
    """Per-token L1 distance between 2-D FFT magnitudes, averaged over the token's values: `[batch, num_tokens]`.

    `per_patch`: the FFT of each channel's p x p patch. `reference`: the released `FourierLoss` (openphenom.md §3.8):
    the `[batch, C * T, P]` tensors are reinterpreted in memory as `[batch, P * C, sqrt(T), sqrt(T)]` before the FFT
    and the elementwise error is reinterpreted back; this equals `per_patch` only when T == P (ViT-S/16 at 256 px).
    """
    batch_size, num_tokens, values_per_token = reconstruction.shape
    if mode == "reference":
        tokens_per_channel = num_tokens // num_channels
        side = math.isqrt(tokens_per_channel)
        if side * side != tokens_per_channel:
            raise ValueError(
                f"fourier_loss_mode 'reference' needs a square token grid per channel, got {tokens_per_channel} "
                "tokens per channel; use fourier_loss_mode='per_patch'"
            )
        shape = (batch_size, values_per_token * num_channels, side, side)
    elif channel_agnostic:
        shape = (batch_size, num_tokens, patch_size, patch_size)
    else:
        # [N, T, p, p, C] -> channels in front of the patch axes, so the FFT runs over each channel's patch.
        shape = (batch_size, num_tokens, patch_size, patch_size, num_channels)
        reconstruction = reconstruction.reshape(shape).movedim(-1, 2)
        target = target.reshape(shape).movedim(-1, 2)
        shape = reconstruction.shape
    magnitude_error = (
        torch.fft.fft2(reconstruction.reshape(shape)).abs() - torch.fft.fft2(target.reshape(shape)).abs()
    ).abs()
    return magnitude_error.reshape(batch_size, num_tokens, -1).mean(dim=-1)


# ----------------------------------------------------------------------------- decoders
class PhenomCrossAttention(nn.Module):
    """Multi-head cross-attention of the channel-agnostic decoder (openphenom.md §3.6): queries from one set of tokens,
    keys and values from a context; `query` and `key_value` have no bias (`key_value` gives K then V); SDPA, which is
    the released manual softmax attention up to rounding."""

    def __init__(self, config: PhenomConfig):
        super().__init__()
        width = config.decoder_hidden_size
        self.num_heads = config.decoder_cross_attention_heads
        self.query = nn.Linear(width, width, bias=False)
        self.key_value = nn.Linear(width, 2 * width, bias=False)
        self.query.is_attention_input = self.key_value.is_attention_input = True  # `attention_init` applies to them
        self.proj = nn.Linear(width, width)
        # Not in the released decoder; `decoder_qk_norm` (PhenomConfig) adds it for faster early learning.
        head_dim = width // self.num_heads
        self.q_norm = _head_norm(config.decoder_qk_norm, head_dim, config.decoder_layer_norm_eps)
        self.k_norm = _head_norm(config.decoder_qk_norm, head_dim, config.decoder_layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """`[batch, num_queries, width]` queries over a `[batch, num_context, width]` context -> like the queries."""
        key, value = self.key_value(context).chunk(2, dim=-1)
        query = self.q_norm(_split_heads(self.query(hidden_states), self.num_heads))
        key = self.k_norm(_split_heads(key, self.num_heads))
        attention, _ = _attend(query, key, _split_heads(value, self.num_heads))
        return self.proj(attention)


def _decoder_position_table(config: PhenomConfig, copies: int) -> nn.Parameter:
    # Frozen sin-cos table, a parameter so that checkpoints carry it (as the released one does).
    return nn.Parameter(
        torch.zeros(1, 1 + copies * config.grid_size**2, config.decoder_hidden_size), requires_grad=False
    )


class PhenomChannelAgnosticDecoder(nn.Module):
    """The released CA-MAE decoder (`CAMAEDecoder`, openphenom.md §3.6), sized from the `decoder_*` config fields.

    Encoder tokens are projected (`encoder_to_decoder`), completed with `mask_token` copies and un-shuffled; every
    token gets its spatial position and its channel's `modality_embeddings` row. Then, for every channel (all at
    once: queries are independent), the shared `cross_attention` of `query_norm(channel tokens)` over
    `context_norm(all tokens)` replaces the tokens (no residual), the shared `mlp` adds `mlp(out_norm(x))`, and the
    channel's own stack `layers[c]` of pre-norm blocks runs. No final norm; the shared `prediction` head gives each
    token's p x p pixels. CLS plays no part in the reconstruction (the released decoder drops it before the head).
    Needs exactly `decoder_num_modalities` channels.
    """

    def __init__(self, config: PhenomConfig):
        super().__init__()
        layer_config = config.decoder_layer_config()
        width = config.decoder_hidden_size
        self.config = config
        self.num_modalities = config.decoder_num_modalities
        self.encoder_to_decoder = nn.Linear(config.hidden_size, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embeddings = _decoder_position_table(config, copies=config.decoder_num_modalities)
        # The released model adds a frozen zero "modality" to CLS; kept so that its checkpoint maps one to one.
        self.cls_modality_embedding = nn.Parameter(torch.zeros(1, 1, width), requires_grad=False)
        self.modality_embeddings = nn.Parameter(torch.zeros(config.decoder_num_modalities, width))
        self.query_norm = nn.LayerNorm(width, eps=config.decoder_layer_norm_eps)
        self.context_norm = nn.LayerNorm(width, eps=config.decoder_layer_norm_eps)
        self.cross_attention = PhenomCrossAttention(config)
        self.out_norm = nn.LayerNorm(width, eps=config.decoder_layer_norm_eps)
        self.mlp = PhenomMLP(layer_config)
        self.layers = nn.ModuleList(
            nn.ModuleList(PhenomSequentialLayer(layer_config) for _ in range(config.decoder_num_hidden_layers))
            for _ in range(config.decoder_num_modalities)
        )
        self.prediction = nn.Linear(width, config.patch_size**2)

    def forward(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, num_channels: int, grid_height: int, grid_width: int
    ) -> torch.Tensor:
        """`latent` `[batch, 1 + num_kept, hidden_size]` (CLS + kept tokens, shuffled) ->
        `[batch, num_channels * T, patch_size**2]` in the original token order."""
        if num_channels != self.num_modalities:
            raise ValueError(
                f"the channel-agnostic decoder reconstructs exactly decoder_num_modalities={self.num_modalities} "
                f"channels (one block stack each), got {num_channels}; the encoder alone (PhenomModel) takes any count"
            )
        hidden_states = restore_token_order(self.encoder_to_decoder(latent[:, 1:]), self.mask_token, ids_restore)
        batch_size, num_tokens, width = hidden_states.shape
        tokens_per_channel = grid_height * grid_width
        positions = grid_positions(self.position_embeddings, self.config.grid_size, grid_height, grid_width)
        channel_positions = positions[None] + self.modality_embeddings[:, None]  # [C, T, width]
        hidden_states = (hidden_states.view(batch_size, num_channels, tokens_per_channel, width) + channel_positions)
        hidden_states = hidden_states.view(batch_size, num_tokens, width)
        hidden_states = self.cross_attention(self.query_norm(hidden_states), self.context_norm(hidden_states))
        hidden_states = hidden_states + self.mlp(self.out_norm(hidden_states))
        per_channel = []
        for channel, layers in enumerate(self.layers):
            channel_states = hidden_states[:, channel * tokens_per_channel : (channel + 1) * tokens_per_channel]
            for layer in layers:
                channel_states = layer(channel_states)
            per_channel.append(channel_states)
        return self.prediction(torch.cat(per_channel, dim=1))


class PhenomDecoder(nn.Module):
    """The standard MAE decoder (He et al.; paper.md §1.4, used by `l8` and `g8`): projection, mask tokens and
    un-shuffle, fixed sin-cos positions, `decoder_num_hidden_layers` pre-norm blocks over CLS + all tokens, final
    LayerNorm, and a linear head to each token's p x p x C pixels."""

    def __init__(self, config: PhenomConfig):
        super().__init__()
        layer_config = config.decoder_layer_config()
        width = config.decoder_hidden_size
        self.config = config
        self.encoder_to_decoder = nn.Linear(config.hidden_size, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embeddings = _decoder_position_table(config, copies=1)
        self.layers = nn.ModuleList(
            PhenomSequentialLayer(layer_config) for _ in range(config.decoder_num_hidden_layers)
        )
        self.norm = nn.LayerNorm(width, eps=config.decoder_layer_norm_eps)
        self.prediction = nn.Linear(width, config.patch_size**2 * config.num_channels)

    def forward(
        self, latent: torch.Tensor, ids_restore: torch.Tensor, num_channels: int, grid_height: int, grid_width: int
    ) -> torch.Tensor:
        """`latent` `[batch, 1 + num_kept, hidden_size]` -> `[batch, T, patch_size**2 * num_channels]`."""
        hidden_states = self.encoder_to_decoder(latent)
        patch_states = restore_token_order(hidden_states[:, 1:], self.mask_token, ids_restore)
        positions = grid_positions(self.position_embeddings, self.config.grid_size, grid_height, grid_width)
        cls_state = hidden_states[:, :1] + self.position_embeddings[:, :1]
        hidden_states = torch.cat([cls_state, patch_states + positions], dim=1)
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return self.prediction(self.norm(hidden_states[:, 1:]))


DECODER_CLASSES = {"channel_agnostic": PhenomChannelAgnosticDecoder, "standard": PhenomDecoder}


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
def _tie_key_to_query(attention: PhenomCrossAttention) -> None:
    """Copy the (already initialized) query weights into the key half of `key_value` (`decoder_tied_qk_init`).
    Children are initialized before their parents, so the query is drawn by now; a loaded key is left alone."""
    key_value = attention.key_value.weight
    if not getattr(key_value, "_is_hf_initialized", False):
        with torch.no_grad():
            key_value[: attention.query.weight.shape[0]].copy_(attention.query.weight)


class PhenomPreTrainedModel(PreTrainedModel):
    config_class = PhenomConfig
    base_model_prefix = "phenom"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["PhenomEmbeddings", "PhenomParallelLayer", "PhenomSequentialLayer"]
    _supports_sdpa = True

    def post_init(self) -> None:
        super().post_init()
        # What the modules froze at construction (sin-cos tables, placeholders, heads off the loss path), by name:
        # transformers' loader replaces every loaded parameter by a new, trainable one, and `from_pretrained`
        # freezes these again.
        self._frozen_parameter_names = frozenset(
            name for name, parameter in self.named_parameters() if not parameter.requires_grad
        )

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """[`PreTrainedModel.from_pretrained`], with the parameters the model freezes at construction still frozen
        (transformers 5 loads every floating-point tensor as a trainable parameter)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading_info) with output_loading_info
        for name, parameter in model.named_parameters():
            if name in model._frozen_parameter_names:
                parameter.requires_grad_(False)
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        """transformers' `save_pretrained`; for the Phenom classes also the remote code (module docstring).

        transformers copies the source of the saved class and records one Auto class for it; `remote_code_fields`
        adds every Auto class and the pipeline, so a directory written by either model class serves them all.
        """
        if self.is_remote_code():  # not for OpenPhenom's legacy classes, whose module is no part of the remote code
            for name, value in remote_code_fields().items():
                setattr(self.config, name, value)
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Conv2d):
            # The patch projection (the only convolution). MAE initializes it like a linear layer over the flattened
            # patch (He et al.): Xavier-uniform with fan_in = in_channels * p * p and fan_out = hidden_size (torch's
            # xavier_uniform_ on the 4-D weight would count fan_out * p * p). Dispatched on the Conv2d itself, the
            # module that owns the tensors: transformers skips `_init_weights` for a custom-code module that owns no
            # parameters directly (PhenomPatchEmbeddings), and `init.uniform_` on the weight itself (not a view)
            # honours `_is_hf_initialized`, so loaded weights are never overwritten.
            fan_out, fan_in = module.weight.shape[0], module.weight[0].numel()
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            init.uniform_(module.weight, -bound, bound)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            if getattr(module, "is_attention_input", False) and self.config.attention_init == "xavier_uniform":
                init.xavier_uniform_(module.weight)
            else:
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
        elif isinstance(module, (PhenomChannelAgnosticDecoder, PhenomDecoder)):
            init.normal_(module.mask_token, std=std)
            copies = module.num_modalities if isinstance(module, PhenomChannelAgnosticDecoder) else 1
            table = position_table(self.config.grid_size, self.config.decoder_hidden_size, copies)
            init.copy_(module.position_embeddings, table.to(module.position_embeddings.dtype))
            if isinstance(module, PhenomChannelAgnosticDecoder):
                # Distinct random channel embeddings so that channels differ from the first step (released: zeros).
                init.normal_(module.modality_embeddings, std=std)
                init.zeros_(module.cls_modality_embedding)
                if self.config.decoder_tied_qk_init:
                    _tie_key_to_query(module.cross_attention)
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

    # A PhenomForMaskedImageModeling checkpoint (encoder under `phenom.`, everything else under `decoder.`) loads into
    # the encoder alone without reporting its decoder.
    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]

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

    def standardize(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Validate and self-standardize: `[batch, C, H, W]` -> float32 `[batch, C, H, W]` (also the MAE target)."""
        validate_pixel_values(pixel_values, self.config)
        return self_standardize(pixel_values, self.config.pixel_scale)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Validate, self-standardize and tokenize: `[batch, C, H, W]` -> `[batch, 1 + num_tokens, hidden_size]`."""
        return self.embeddings(self.standardize(pixel_values))

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> PhenomModelOutput | tuple:
        """
        Args:
            pixel_values: `[batch, channels, height, width]`, uint8 or float on the 0..`pixel_scale` scale.
            output_attentions: also return every block's attention weights (computed without SDPA; slower).
            output_hidden_states: also return the embeddings and every block's output.
            return_dict: a [`PhenomModelOutput`] (default) or a plain tuple of its non-`None` fields.

        Any other keyword is a `TypeError` (a misspelt option is never silently ignored).
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        tokens = self.embed(pixel_values)
        last_hidden_state, hidden_states, attentions = self.encoder(
            tokens, output_hidden_states=output_hidden_states, output_attentions=output_attentions
        )
        pooled = pool_patch_tokens(last_hidden_state)
        output = PhenomModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=pooled,
            normalized_pooler_output=self.fc_norm(pooled),
            hidden_states=hidden_states,
            attentions=attentions,
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

        Returns `{block: [batch, hidden_size]}` (patch-token mean), or `[batch, C * hidden_size]` with `per_channel`
        (channel-agnostic models only: a standard model's tokens hold every channel at once).
        """
        if per_channel and not self.config.channel_agnostic:
            raise ValueError("per-channel embeddings need a channel-agnostic model (one token set per channel); this "
                             "model embeds all channels in each token")
        chosen = self.resolve_blocks(blocks)
        _, hidden_states, _ = self.encoder(self.embed(pixel_values), output_hidden_states=True, num_blocks=chosen[-1])
        if per_channel:
            num_channels = pixel_values.shape[1]
            return {block: pool_per_channel(hidden_states[block], num_channels) for block in chosen}
        return {block: pool_patch_tokens(hidden_states[block]) for block in chosen}

    def get_channelwise_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`[batch, C * hidden_size]`: per-channel token means of the last block, channel-major."""
        return self.get_block_embeddings(pixel_values, blocks="last", per_channel=True)[self.num_blocks]


class PhenomForMaskedImageModeling(PhenomPreTrainedModel):
    """Phenom encoder + MAE decoder + loss (AutoModelForMaskedImageModeling, AutoModelForPreTraining).

    Masks `mask_ratio` of all C x T patch tokens jointly (CLS is always kept), encodes the kept ones, decodes every
    token (`decoder_type`: the released channel-agnostic decoder or the standard MAE decoder) and scores the masked
    ones against the self-standardized image: `(1 - w) * MSE + w * Fourier` (openphenom.md §3.6-3.8).

    ```python
    >>> import torch
    >>> from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling
    >>> model = PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny"))
    >>> pixels = torch.randint(0, 256, (2, 6, 256, 256), dtype=torch.uint8)
    >>> out = model(pixels)
    >>> out.reconstruction.shape, out.mask.shape  # 6 channels x 64 tokens, 32 x 32 pixels per token
    (torch.Size([2, 384, 1024]), torch.Size([2, 384]))
    >>> model.reconstruction_to_images(out.reconstruction).shape
    torch.Size([2, 6, 256, 256])
    ```
    """

    def __init__(self, config: PhenomConfig):
        super().__init__(config)
        self.phenom = PhenomModel(config)
        self.decoder = DECODER_CLASSES[config.decoder_type](config)
        # The encoder's pooling head `fc_norm` is not on the MAE path (openphenom.md §3.5), so it would never get a
        # gradient: frozen here, by the model, so that any trainer (accelerate + DDP without an unused-parameter
        # search, transformers' Trainer, a plain loop) works and weight decay does not shrink it. It is kept (and
        # saved) so that `AutoModel` loads it from a pretraining checkpoint; PhenomModel alone trains it.
        self.phenom.fc_norm.requires_grad_(False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.phenom.get_input_embeddings()

    def forward(
        self,
        pixel_values: torch.Tensor,
        noise: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> PhenomForMaskedImageModelingOutput | tuple:
        """
        Args:
            pixel_values: `[batch, channels, height, width]`, uint8 or float on the 0..`pixel_scale` scale.
            noise: optional `[batch, num_tokens]` float; tokens are shuffled by `argsort(noise)` and the lowest
                `int(num_tokens * (1 - mask_ratio))` kept. Random if `None`.
            mask_ratio: overrides `config.mask_ratio` for this call (0 = keep every token, still shuffled).
            output_attentions: also return the encoder blocks' attention weights (computed without SDPA; slower).
            output_hidden_states: also return the encoder's hidden states of the kept tokens.
            return_dict: a [`PhenomForMaskedImageModelingOutput`] (default) or a tuple of its non-`None` fields.

        Any other keyword is a `TypeError`.
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        mask_ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        standardized = self.phenom.standardize(pixel_values)
        _, num_channels, height, width = standardized.shape
        tokens = self.phenom.embeddings(standardized)
        encoder_input, mask, ids_restore = random_masking(tokens, mask_ratio, noise, num_prefix_tokens=1)
        latent, hidden_states, attentions = self.phenom.encoder(
            encoder_input, output_hidden_states=output_hidden_states, output_attentions=output_attentions
        )
        grid_height, grid_width = height // self.config.patch_size, width // self.config.patch_size
        reconstruction = self.decoder(latent, ids_restore, num_channels, grid_height, grid_width)
        num_masked = mask.shape[0] * (mask.shape[1] + 1 - encoder_input.shape[1])
        terms = self.compute_loss(reconstruction, standardized, mask, num_masked=num_masked)
        output = PhenomForMaskedImageModelingOutput(
            loss=terms.loss,
            reconstruction_loss=terms.reconstruction_loss,
            fourier_loss=terms.fourier_loss,
            reconstruction=reconstruction,
            mask=mask,
            ids_restore=ids_restore,
            latent=latent,
            hidden_states=hidden_states,
            attentions=attentions,
        )
        return output if return_dict else output.to_tuple()

    def compute_loss(
        self,
        reconstruction: torch.Tensor,
        standardized_pixels: torch.Tensor,
        mask: torch.Tensor,
        num_masked: int | None = None,
    ) -> PhenomLossTerms:
        """The MAE objective (openphenom.md §3.8, paper.md §1.5), computed in float32.

        Args:
            reconstruction: the decoder output (layout of [`patchify`] for this model's decoder).
            standardized_pixels: `[batch, C, H, W]` self-standardized images (the target, no norm-pix).
            mask: `[batch, num_tokens]`, 1 = masked.
            num_masked: number of masked tokens in the batch if known (avoids a device sync); counted otherwise.
        Returns:
            [`PhenomLossTerms`]; every term `None` when no token is masked (never a 0/0 NaN).
        """
        if num_masked is None:
            num_masked = int(mask.sum())
        if num_masked == 0:
            return PhenomLossTerms(None, None, None)
        config = self.config
        channel_agnostic = config.decoder_type == "channel_agnostic"
        num_channels = standardized_pixels.shape[1]
        target = patchify(standardized_pixels.float(), config.patch_size, channel_agnostic)
        reconstruction = reconstruction.float()
        mask = mask.float()
        squared_error = (reconstruction - target).pow(2).mean(dim=-1)
        reconstruction_loss = (squared_error * mask).sum() / num_masked
        weight = config.fourier_loss_weight
        if weight == 0:
            return PhenomLossTerms(reconstruction_loss, reconstruction_loss, None)
        fourier_error = fourier_token_error(
            reconstruction, target, config.fourier_loss_mode, config.patch_size, num_channels, channel_agnostic
        )
        fourier_loss = (fourier_error * mask).sum() / num_masked if config.mask_fourier_loss else fourier_error.mean()
        loss = (1 - weight) * reconstruction_loss + weight * fourier_loss
        return PhenomLossTerms(loss, reconstruction_loss, fourier_loss)

    def reconstruction_to_images(
        self, reconstruction: torch.Tensor, image_size: int | tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Decoder output -> `[batch, C, H, W]` images in self-standardized units.

        Args:
            reconstruction: `PhenomForMaskedImageModelingOutput.reconstruction`.
            image_size: `(height, width)` or one side of the input images; a square grid is assumed if `None`.
        """
        config = self.config
        channel_agnostic = config.decoder_type == "channel_agnostic"
        num_channels = config.decoder_num_modalities if channel_agnostic else config.num_channels
        tokens_per_channel = reconstruction.shape[1] // (num_channels if channel_agnostic else 1)
        if image_size is None:
            side = math.isqrt(tokens_per_channel)
            if side * side != tokens_per_channel:
                raise ValueError(f"{tokens_per_channel} tokens per channel is not a square grid: pass image_size")
            grid_height = grid_width = side
        else:
            height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
            grid_height, grid_width = height // config.patch_size, width // config.patch_size
            if grid_height * grid_width != tokens_per_channel:
                raise ValueError(
                    f"image_size {height} x {width} gives {grid_height * grid_width} tokens per channel, but the "
                    f"reconstruction has {tokens_per_channel}"
                )
        return unpatchify(reconstruction, config.patch_size, num_channels, grid_height, grid_width, channel_agnostic)


# ----------------------------------------------------------------------------- Hub remote code
def remote_code_fields() -> dict:
    """The `config.json` fields that let transformers load a saved Phenom directory from its own source files
    (`trust_remote_code=True`): `auto_map` (Auto class -> `<file>.<class>`) and `custom_pipelines`."""
    auto_map = {
        "AutoConfig": PhenomConfig,
        "AutoModel": PhenomModel,
        "AutoModelForMaskedImageModeling": PhenomForMaskedImageModeling,
        "AutoModelForPreTraining": PhenomForMaskedImageModeling,
        "AutoImageProcessor": PhenomImageProcessor,
    }
    return {"auto_map": {name: code_reference(cls) for name, cls in auto_map.items()},
            "custom_pipelines": custom_pipelines()}


# transformers copies the source of registered classes into `save_pretrained` directories (with their relative
# imports: every file of the remote code).
PhenomModel.register_for_auto_class("AutoModel")
PhenomForMaskedImageModeling.register_for_auto_class("AutoModelForMaskedImageModeling")

__all__ = [
    "PhenomModelOutput",
    "PhenomForMaskedImageModelingOutput",
    "PhenomLossTerms",
    "PhenomPreTrainedModel",
    "PhenomModel",
    "PhenomForMaskedImageModeling",
    "PhenomChannelAgnosticDecoder",
    "PhenomDecoder",
    "PhenomCrossAttention",
    "PhenomEmbeddings",
    "PhenomPatchEmbeddings",
    "PhenomParallelLayer",
    "PhenomSequentialLayer",
    "PhenomAttention",
    "PhenomMLP",
    "PhenomEncoder",
    "PhenomDropPath",
    "PhenomLayerScale",
    "PhenomHeadNorm",
    "validate_pixel_values",
    "self_standardize",
    "sincos_2d_position_embedding",
    "position_table",
    "grid_positions",
    "random_masking",
    "restore_token_order",
    "patchify",
    "unpatchify",
    "fourier_token_error",
    "pool_patch_tokens",
    "pool_per_channel",
    "remote_code_fields",
]
