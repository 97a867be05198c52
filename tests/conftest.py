"""Shared test helpers: offline Hub, fixture paths and test-sized configs (transformers' tester pattern)."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# One intra-op thread per pytest-xdist worker: `-n 2` workers on 2 cores with 2 OpenMP threads each oversubscribe the
# machine, and small training steps then spend most of their time spinning at OpenMP barriers (10-100x slower).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
else:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def small_config(**overrides):
    """A channel-agnostic config that runs in milliseconds: 32 px, patch 8 (16 tokens per channel), width 32."""
    from modeling_phenom import PhenomConfig

    values = dict(
        image_size=32, patch_size=8, num_channels=6, channel_agnostic=True, hidden_size=32, num_hidden_layers=3,
        num_attention_heads=2, intermediate_size=64, drop_path_rate=0.0, decoder_hidden_size=16,
        decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=32,
        decoder_cross_attention_heads=2,
    )
    values.update(overrides)
    return PhenomConfig(**values)


def random_pixels(batch_size=2, num_channels=6, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch_size, num_channels, size, size), generator=generator, dtype=torch.uint8)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
