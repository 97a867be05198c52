"""Per-GPU memory plan for MAE pretraining under DeepSpeed ZeRO-3 (docs/scaling.md).

    python -m bench.memory_plan --preset g8 --gpus 256 --gpus-per-node 8 --global-batch 8192 --micro-batch 32

Model states: bf16 parameters and gradients and fp32 master weights plus Lion's one fp32 momentum, all sharded over
the GPUs, plus the gathered parameters of the largest layers ZeRO-3 keeps live. Activations: measured, not
estimated: one training forward of the real model (bf16, on PyTorch's meta device: shapes only, no memory, no
compute) with `torch.autograd.graph.saved_tensors_hooks` adding up every tensor autograd saves for the backward,
once with all blocks and once with gradient checkpointing (only each block's input kept, one block recomputed at a
time). DeepSpeed's own estimator (`estimate_zero3_model_states_mem_needs_all_cold`) is printed beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math

import torch

from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling

GIB = 1024**3
BYTES_PER_PARAMETER = {  # mixed precision with ZeRO-3 and Lion (one momentum buffer)
    "bf16 parameters": 2,
    "bf16 gradients": 2,
    "fp32 master weights": 4,
    "fp32 Lion momentum": 4,
}


def _saved_tensor_bytes(model: torch.nn.Module, pixel_values: torch.Tensor) -> tuple[int, int]:
    """Bytes of the activations autograd saves during one training forward, each storage counted once.

    Returns `(activations, attention_scores)`: parameters (saved by matmuls for the input gradient) are not
    activations and are left out; square `[..., L, L]` score tensors are counted apart, because on the meta device
    SDPA takes its math path, while flash / memory-efficient attention on GPUs keeps only O(L) statistics.
    """
    parameter_storages = {parameter.untyped_storage()._cdata for parameter in model.parameters()}
    seen: dict[int, tuple[int, bool]] = {}

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in parameter_storages:
            square = tensor.ndim >= 2 and tensor.shape[-1] == tensor.shape[-2] and tensor.shape[-1] > 64
            seen[storage._cdata] = (storage.nbytes(), square and tensor.dtype == torch.float32)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(pixel_values=pixel_values)
    scores = sum(size for size, is_score in seen.values() if is_score)
    return sum(size for size, _ in seen.values()) - scores, scores


def activation_bytes(config: PhenomConfig, image_size: int, num_channels: int) -> dict[str, float]:
    """Activation bytes per sample: encoder per block, decoder, and the checkpointed encoder per block."""

    def measure(num_blocks: int) -> tuple[int, int]:
        values = {**config.to_dict(), "num_hidden_layers": num_blocks, "drop_path_rate": 0.0}
        with torch.device("meta"):
            model = PhenomForMaskedImageModeling(PhenomConfig(**values))
        model = model.to(torch.bfloat16).train()
        pixels = torch.empty(1, num_channels, image_size, image_size, dtype=torch.uint8, device="meta")
        return _saved_tensor_bytes(model, pixels)

    (one, one_scores), (two, two_scores) = measure(1), measure(2)
    per_block = two - one
    kept_tokens = 1 + int(config.grid_size**2 * (num_channels if config.channel_agnostic else 1)
                          * (1 - config.mask_ratio))
    return {
        "encoder_per_block": per_block,
        "decoder_and_embeddings": one - per_block,
        "checkpointed_per_block": kept_tokens * config.hidden_size * 2,  # the bf16 block input
        "math_attention_scores_encoder_per_block": two_scores - one_scores,
        "math_attention_scores_decoder": one_scores - (two_scores - one_scores),
        "kept_tokens": kept_tokens,
    }


def plan(preset: str, gpus: int, gpus_per_node: int, global_batch: int, micro_batch: int) -> dict:
    config = PhenomConfig.from_preset(preset)
    with torch.device("meta"):
        model = PhenomForMaskedImageModeling(config)
    total = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    largest_layer = max(sum(p.numel() for p in module.parameters(recurse=False)) for module in model.modules())
    if global_batch % (gpus * micro_batch):
        raise ValueError(f"global batch {global_batch} is not divisible by {gpus} GPUs x micro-batch {micro_batch}")
    accumulation = global_batch // (gpus * micro_batch)
    states = {name: trainable * size / gpus for name, size in BYTES_PER_PARAMETER.items()}
    # ZeRO-3 gathers a layer's full bf16 parameters to run it; with prefetch about two layers are live at once.
    states["gathered live parameters (2 layers, bf16)"] = 2 * largest_layer * 2
    channels = 6
    activations = activation_bytes(config, config.image_size, channels)
    depth = config.num_hidden_layers
    full = micro_batch * (depth * activations["encoder_per_block"] + activations["decoder_and_embeddings"])
    checkpointed = micro_batch * (depth * activations["checkpointed_per_block"]
                                  + activations["encoder_per_block"] + activations["decoder_and_embeddings"])
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold

        estimate_zero3_model_states_mem_needs_all_cold(total, largest_layer, num_gpus_per_node=gpus_per_node,
                                                       num_nodes=math.ceil(gpus / gpus_per_node))
    return {
        "preset": preset, "gpus": gpus, "global_batch": global_batch, "micro_batch": micro_batch,
        "gradient_accumulation": accumulation, "parameters_total": total, "parameters_trainable": trainable,
        "largest_layer_parameters": largest_layer,
        "model_states_bytes_per_gpu": states, "model_states_gib_per_gpu": sum(states.values()) / GIB,
        "activation_bytes_per_sample": activations,
        "activations_gib_per_gpu": {"no checkpointing": full / GIB, "gradient checkpointing": checkpointed / GIB},
        "deepspeed_estimator": buffer.getvalue().strip(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="g8")
    parser.add_argument("--gpus", type=int, default=256)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--global-batch", type=int, default=8192)
    parser.add_argument("--micro-batch", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    args = parser.parse_args(argv)
    result = plan(args.preset, args.gpus, args.gpus_per_node, args.global_batch, args.micro_batch)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['preset']}: {result['parameters_total']:,} parameters ({result['parameters_trainable']:,} "
          f"trainable), largest layer {result['largest_layer_parameters']:,}")
    print(f"{args.gpus} GPUs x micro-batch {args.micro_batch} x accumulation {result['gradient_accumulation']} = "
          f"global batch {args.global_batch}")
    print("model states per GPU:")
    for name, value in result["model_states_bytes_per_gpu"].items():
        print(f"  {name:<42} {value / 2**20:10.1f} MiB")
    print(f"  {'total':<42} {result['model_states_gib_per_gpu'] * 1024:10.1f} MiB")
    acts = result["activation_bytes_per_sample"]
    print(f"activations per sample (bf16, measured): encoder {acts['encoder_per_block'] / 2**20:.1f} MiB per block, "
          f"decoder + embeddings {acts['decoder_and_embeddings'] / 2**20:.1f} MiB, "
          f"{acts['kept_tokens']} encoder tokens; not counted (flash SDPA keeps no score matrix): math-path "
          f"scores {acts['math_attention_scores_encoder_per_block'] / 2**20:.1f} MiB per encoder block, "
          f"{acts['math_attention_scores_decoder'] / 2**20:.1f} MiB in the decoder")
    for name, value in result["activations_gib_per_gpu"].items():
        print(f"activations per GPU, {name}: {value:.1f} GiB")
    print("DeepSpeed estimator (assumes Adam: 16 bytes per parameter of optimizer states and gradients):")
    print(result["deepspeed_estimator"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

__all__ = ["activation_bytes", "main", "plan"]
