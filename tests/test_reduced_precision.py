"""Reduced-precision inference: under bf16 autocast the blocks run their attention in bf16 without float32 round trips,
and the embeddings stay close to float32 ones (float32 results are untouched: tests/test_openphenom_parity.py);
`--dtype auto` picks bf16 only on hardware with native bf16."""

import pytest
import torch
from conftest import random_pixels, small_config
from torch.utils._python_dispatch import TorchDispatchMode

from eval.precision import cpu_flags, native_bf16, resolve_precision
from modeling_phenom import PhenomModel

SDPA_OPS = ("scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu")
CAST_OPS = ("to", "_to_copy", "copy_")
NORM_OPS = ("layer_norm", "native_layer_norm")


class RecordOps(TorchDispatchMode):
    """Every aten op that runs, with the dtypes and shapes of its tensor inputs and outputs (what autocast really
    dispatched, casts included)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        tensors_in = [value for value in args if isinstance(value, torch.Tensor)]
        tensors_out = output if isinstance(output, (tuple, list)) else [output]
        tensors_out = [value for value in tensors_out if isinstance(value, torch.Tensor)]
        self.calls.append((func.__name__, [(t.dtype, tuple(t.shape)) for t in tensors_in],
                           [(t.dtype, tuple(t.shape)) for t in tensors_out]))
        return output


def trained_like_model(**overrides) -> PhenomModel:
    """A small model whose blocks matter: LayerScale 1 (the presets start at 1e-4, which would make every block
    nearly the identity and any precision look perfect)."""
    torch.manual_seed(0)
    model = PhenomModel(small_config(layer_scale_init_value=1.0, **overrides)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("mlp_bias", "qkv_bias")) or "norm" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model


@pytest.mark.parametrize("block_type", ["parallel", "sequential"])
def test_bf16_autocast_feeds_attention_bf16_queries_and_keys_without_float32_copies(block_type):
    model = trained_like_model(block_type=block_type, qk_norm=True)
    config = model.config
    recorder = RecordOps()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16), recorder:
        model(random_pixels())
    head_shape = (2, config.num_attention_heads, 1 + 6 * 16, config.head_dim)
    attention_calls = [call for call in recorder.calls if call[0].split(".")[0] in SDPA_OPS]
    assert len(attention_calls) == config.num_hidden_layers
    for _, inputs, _ in attention_calls:
        assert [dtype for dtype, _ in inputs[:3]] == [torch.bfloat16] * 3, inputs
    # Autocast alone ran the qk LayerNorm in float32: q and k copied to float32 and back, per block.
    float32_head_copies = [call for call in recorder.calls if call[0].split(".")[0] in CAST_OPS
                           and any(dtype == torch.float32 and shape == head_shape for dtype, shape in call[2])]
    assert float32_head_copies == []
    norms = [call for call in recorder.calls if call[0].split(".")[0] in NORM_OPS
             and call[1][0][1] == head_shape]
    assert len(norms) == 2 * config.num_hidden_layers and {call[1][0][0] for call in norms} == {torch.bfloat16}


@pytest.mark.parametrize("block_type", ["parallel", "sequential"])
def test_bf16_autocast_embeddings_are_float32_and_close_to_float32_ones(block_type):
    model = trained_like_model(block_type=block_type, qk_norm=True)
    pixels = random_pixels(batch_size=4)
    with torch.inference_mode():
        reference = model.get_block_embeddings(pixels, blocks="all")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reduced = model.get_block_embeddings(pixels, blocks="all")
    for block, embedding in reduced.items():
        assert embedding.dtype == torch.float32
        cosine = torch.nn.functional.cosine_similarity(embedding, reference[block], dim=-1)
        assert cosine.min() > 0.999, (block, cosine)
        assert not torch.equal(embedding, reference[block])  # bf16 really ran


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx512f", "avx512_bf16", "avx512_vnni"}
    assert cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize(("flags", "expected"), [
    ({"avx512f", "avx512_bf16"}, "bfloat16"),
    ({"avx512f", "amx_tile", "amx_bf16"}, "bfloat16"),
    ({"avx512f", "avx2"}, "float32"),  # AVX-512 without BF16: PyTorch emulates bf16, slower than float32
    (set(), "float32"),
])
def test_dtype_auto_picks_bf16_only_on_a_cpu_with_native_bf16(flags, expected):
    precision = resolve_precision("auto", "cpu", flags=flags)
    assert precision.dtype == expected and precision.requested == "auto"
    assert precision.autocast == (torch.bfloat16 if expected == "bfloat16" else None)
    assert precision.record() == {"requested": "auto", "dtype": expected, "reason": precision.reason}
    assert ("avx512_bf16" in precision.reason or "amx_bf16" in precision.reason)


def test_dtypes_other_than_auto_are_taken_as_asked_and_unknown_ones_refused():
    assert native_bf16("cpu", flags=set())[0] is False
    assert resolve_precision("float32", "cpu").autocast is None
    assert resolve_precision("bfloat16", "cpu", flags=set()).dtype == "bfloat16"  # asked for: taken as asked
    with pytest.raises(ValueError, match="dtype must be one of auto, float32, bfloat16, float16, got 'bf16'"):
        resolve_precision("bf16", "cpu")
