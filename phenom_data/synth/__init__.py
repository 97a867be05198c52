"""Synthetic RxRx-like Cell Painting data in the exact RxRx3-core layout, with planted biology (DESIGN §4).

>>> from phenom_data.synth import generate, load_ground_truth
>>> path = generate("synthetic-small", size="small", seed=0)  # doctest: +SKIP
>>> truth = load_ground_truth(path)  # doctest: +SKIP

Modules: `config` (sizes and presets), `biology` (genes, complexes, compounds, phenotypes from the bundled
annotations), `layout` (experiments, plates, wells, batch effects), `render` (drawing cells), `writer` (parquet
shards, metadata CSV), `truth` (`ground_truth.json` schema and the dataset README), `generate` (the run; its
command line is `phenom/commands/synth.py`).
"""

from phenom_data.synth.config import IMAGE_SIZES, SIZES, SynthConfig
from phenom_data.synth.generate import generate, generate_from_config
from phenom_data.synth.layout import RXRX3_CORE_CONCENTRATIONS
from phenom_data.synth.render import CHANNELS, PHENOTYPE_AXES
from phenom_data.synth.truth import load_ground_truth
from phenom_data.synth.writer import METADATA_COLUMNS, METADATA_FILE, image_features

__all__ = [
    "CHANNELS",
    "IMAGE_SIZES",
    "METADATA_COLUMNS",
    "METADATA_FILE",
    "PHENOTYPE_AXES",
    "RXRX3_CORE_CONCENTRATIONS",
    "SIZES",
    "SynthConfig",
    "generate",
    "generate_from_config",
    "image_features",
    "load_ground_truth",
]
