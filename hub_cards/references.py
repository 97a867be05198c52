"""Fixed facts a card quotes: licenses, known datasets, preset names, the paper's numbers and the citations (metric
titles and descriptions come from the benchmark registry, `eval.benchmarks`).

Sources: `reference/openphenom.md` §0-1 (OpenPhenom's license, training data and released recipe),
`reference/paper.md` §1.1 (model names) and §6.5 (RxRx3-core 735-gene recall as reported by the RxRx3-core paper,
Kraus et al. 2025, Table 6; a secondary source there), the PMLR page of Kenyon-Dean et al. 2025 (citation).
"""

from __future__ import annotations

import re

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

# ------------------------------------------------------------------------------------------------ licenses
OPENPHENOM_REPO_ID = "recursionpharma/OpenPhenom"
OPENPHENOM_LICENSE = {
    "license": "other",
    "license_name": "recursion-non-commercial-eula",
    "license_link": "https://huggingface.co/recursionpharma/OpenPhenom/blob/main/LICENSE",
}
# RxRx3-core ships the same Recursion non-commercial EULA (paper.md §7.1): weights trained on it follow its terms.
RXRX_DATA_LICENSE = {
    "license": "other",
    "license_name": "recursion-non-commercial-eula",
    "license_link": "https://huggingface.co/datasets/recursionpharma/rxrx3-core/blob/main/LICENSE",
}
OPENPHENOM_TRAINING = (
    "OpenPhenom-S/16 was trained by Recursion on RxRx3 together with the JUMP-CP ORF and CRISPR Cell Painting "
    "collections. The released recipe (Recursion's `maes_microscopy` configs): Lion optimizer (learning rate 1e-4, "
    "betas (0.9, 0.95), weight decay 0.05), one-cycle cosine schedule with 10 % warm-up, mask ratio 0.75, MSE "
    "reconstruction loss mixed with a Fourier loss at weight 0.01, channel-agnostic decoder (512 wide, 8 blocks per "
    "channel)."
)

# ------------------------------------------------------------------------------------------------ datasets
# Hub id -> display name; lower-case aliases a results file may use for the same dataset.
KNOWN_DATASETS = {"recursionpharma/rxrx3-core": "RxRx3-core"}
DATASET_ALIASES = {"rxrx3-core": "recursionpharma/rxrx3-core", "rxrx3_core": "recursionpharma/rxrx3-core"}


def looks_like_hub_id(text: str) -> bool:
    """`owner/name` that huggingface_hub's own validator accepts (a relative path of two parts looks the same: callers
    check disk)."""
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return "/" in text


def dataset_identity(dataset: str) -> tuple[str, str]:
    """`(type, name)` for a model-index entry: a Hub id where one is known or given, else the last path part.

    >>> dataset_identity("rxrx3-core")
    ('recursionpharma/rxrx3-core', 'RxRx3-core')
    >>> dataset_identity("/data/synthetic_rxrx")
    ('synthetic_rxrx', 'synthetic_rxrx')
    """
    text = dataset.strip()
    text = DATASET_ALIASES.get(text.lower(), text)
    if text.lower() in KNOWN_DATASETS:
        return text.lower(), KNOWN_DATASETS[text.lower()]
    if looks_like_hub_id(text):
        return text, text.split("/", 1)[1]
    name = re.split(r"[\\/]", text.rstrip("\\/"))[-1] or text
    return name, name


# ------------------------------------------------------------------------------------------------ models
PRESET_TITLES = {
    "tiny": "tiny (a demo-sized channel-agnostic MAE)",
    "demo": "demo (`phenom demo`'s model: tiny at 64 px with 8 px patches)",
    "ca-s16": "ca-s16 (CA-MAE-S/16, the OpenPhenom geometry)",
    "ca-b16": "ca-b16 (CA-MAE-B/16)",
    "l16": "l16 (MAE-L/16)",
    "l8": "l8 (MAE-L/8, the Phenom-1 geometry)",
    "g8": "g8 (MAE-G/8, the Phenom-2 geometry)",
}
# Fields that define a preset's geometry (the others are recipe or runtime choices).
PRESET_GEOMETRY_FIELDS = ("patch_size", "channel_agnostic", "hidden_size", "num_hidden_layers", "num_attention_heads",
                          "intermediate_size")
CORRECTION_TITLES = {"none": "no correction", "pca-centerscale": "PCA-CenterScale", "tvn": "TVN",
                     "centerscale": "CenterScale"}

# ------------------------------------------------------------------------------------------------ the paper
PAPER_URL = "https://proceedings.mlr.press/v267/kenyon-dean25a.html"
PAPER_RECALL_SOURCE = (
    "RxRx3-core 735-gene known-relationship recall at the 5 % / 95 % tails from the RxRx3-core paper (Kraus et al. "
    "2025, Table 6), the table the ViTally Consistent materials quote for RxRx3-core"
)
PAPER_RECALL_COLUMNS = ("CORUM", "hu.MAP", "Reactome", "StringDB")
# Our metric whose number corresponds to each column (computed with our pipeline and null, so not equal by design).
PAPER_RECALL_METRICS = ("recall_CORUM_0.05_0.95", "recall_HuMAP_0.05_0.95", "recall_Reactome_0.05_0.95",
                        "recall_StringDB_0.05_0.95")
PAPER_RECALL_ROWS = (
    ("Random", (0.107, 0.111, 0.107, 0.115)),
    ("CellProfiler", (0.361, 0.444, 0.160, 0.330)),
    ("OpenPhenom-S/16", (0.300, 0.352, 0.158, 0.281)),
    ("Phenom-1 (MAE-L/8)", (0.395, 0.482, 0.188, 0.349)),
    ("Phenom-2 (MAE-G/8)", (0.486, 0.553, 0.197, 0.415)),
)

VITALLY_CONSISTENT_BIBTEX = r"""@inproceedings{kenyondean2025vitally,
  title     = {{ViTally Consistent}: Scaling Biological Representation Learning for Cell Microscopy},
  author    = {Kenyon-Dean, Kian and Wang, Zitong Jerry and Urbanik, John and Donhauser, Konstantin and
               Hartford, Jason and Saberian, Saber and Sahin, Nil and Bendidi, Ihab and Celik, Safiye and
               Vera, Juan Sebasti{\'a}n Rodr{\'i}guez and Fay, Marta and Haque, Imran S and Kraus, Oren},
  booktitle = {Proceedings of the 42nd International Conference on Machine Learning},
  series    = {Proceedings of Machine Learning Research},
  volume    = {267},
  pages     = {29735--29752},
  publisher = {PMLR},
  year      = {2025},
  url       = {https://proceedings.mlr.press/v267/kenyon-dean25a.html}
}"""

RXRX3_CORE_BIBTEX = r"""@misc{kraus2025rxrx3core,
  title         = {{RxRx3-core}: Benchmarking Drug-Target Interactions in High-Content Microscopy},
  author        = {Kraus, Oren and Comitani, Federico and Urbanik, John and Kenyon-Dean, Kian and
                   Arumugam, Lakshmanan and Saberian, Saber and Wognum, Cas and Celik, Safiye and Haque, Imran S},
  year          = {2025},
  eprint        = {2503.20158},
  archivePrefix = {arXiv}
}"""


def phenom_bibtex(version: str) -> str:
    """Citation of this package."""
    return (
        "@software{phenom,\n"
        "  title   = {Phenom: channel-agnostic microscopy masked autoencoders for Hugging Face transformers},\n"
        "  author  = {{Phenom developers}},\n"
        f"  version = {{{version}}},\n"
        "  note    = {Apache-2.0; implements Kenyon-Dean et al., ICML 2025}\n"
        "}"
    )


__all__ = [
    "CORRECTION_TITLES",
    "DATASET_ALIASES",
    "KNOWN_DATASETS",
    "OPENPHENOM_LICENSE",
    "OPENPHENOM_REPO_ID",
    "OPENPHENOM_TRAINING",
    "PAPER_RECALL_COLUMNS",
    "PAPER_RECALL_METRICS",
    "PAPER_RECALL_ROWS",
    "PAPER_RECALL_SOURCE",
    "PAPER_URL",
    "PRESET_GEOMETRY_FIELDS",
    "PRESET_TITLES",
    "RXRX3_CORE_BIBTEX",
    "RXRX_DATA_LICENSE",
    "VITALLY_CONSISTENT_BIBTEX",
    "dataset_identity",
    "looks_like_hub_id",
    "phenom_bibtex",
]
