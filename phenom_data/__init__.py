"""Data sources for Phenom: RxRx3-core / RxRx1 / a folder of plates streamed with `datasets`, the synthetic
RxRx-like generator, well grouping and views, and the bundled benchmark annotations (`annotations/`)."""

from pathlib import Path

ANNOTATIONS_DIR = Path(__file__).parent / "annotations"

__all__ = ["ANNOTATIONS_DIR"]
