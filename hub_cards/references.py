"""Fixed facts a card quotes: licenses, known datasets, preset names, metric descriptions, the paper's numbers and
the citations.

Sources: `reference/openphenom.md` §0-1 (OpenPhenom's license, training data and released recipe),
`reference/paper.md` §1.1 (model names) and §6.5 (RxRx3-core 735-gene recall as reported by the RxRx3-core paper,
Kraus et al. 2025, Table 6; a secondary source there), the PMLR page of Kenyon-Dean et al. 2025 (citation).
"""

from __future__ import annotations

import re

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
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_hub_id(text: str) -> bool:
    """`owner/name` with Hub-legal characters (a relative path of two parts looks the same: callers check disk)."""
    return bool(_HUB_ID.match(text))


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

# ------------------------------------------------------------------------------------------------ metrics
_SOURCE_TITLES = {"CORUM": "CORUM", "HuMAP": "hu.MAP", "Reactome": "Reactome", "SIGNOR": "SIGNOR",
                  "StringDB": "StringDB"}
METRIC_FAMILIES = (
    (re.compile(r"^recall_mean_"), "mean recall",
     "known-relationship recall averaged over CORUM, hu.MAP, Reactome and StringDB (as the paper)"),
    (re.compile(r"^recall_"), "recall",
     "known-relationship recall: fraction of annotated gene pairs whose cosine similarity falls in the lower or "
     "upper tail (percentiles in the name) of the null of all gene-pair cosines (EFAAR)"),
    (re.compile(r"^replicate_consistency_"), "replicate consistency",
     "batch-correction replicate consistency: Kolmogorov-Smirnov (ks) or Cramér-von Mises (cm) statistic between "
     "replicate cosines and a null"),
    (re.compile(r"^compound_gene_"), "compound-gene activity",
     "compound-gene activity prediction on RxRx3-core: average precision (ap) or ROC AUC (auc) of known "
     "compound-gene interactions, per concentration or at the best concentration (max)"),
    (re.compile(r"^signal_"), "signal",
     "perturbation signal: fraction of perturbations with a consistent (or large) signal against controls"),
    (re.compile(r"^probe_"), "linear probe",
     "block-wise linear probe: class-balanced logistic regression scored by balanced accuracy on held-out "
     "experiments; probe_best_block is the block it recommends"),
)


def metric_family(name: str) -> tuple[int, str, str]:
    """`(order, family, description)` of a metric name; unknown names sort last."""
    for order, (pattern, family, description) in enumerate(METRIC_FAMILIES):
        if pattern.match(name):
            return order, family, description
    return len(METRIC_FAMILIES), "other", "reported by the evaluation as is"


def metric_title(name: str) -> str:
    """A readable title: `recall_CORUM_0.05_0.95` -> `CORUM recall (5 % / 95 %)`; unknown names unchanged."""
    if match := re.match(r"^recall_(\w+?)_([\d.]+)_([\d.]+)$", name):
        source, lower, upper = match.groups()
        try:
            tails = f"{float(lower) * 100:g} % / {float(upper) * 100:g} %"
        except ValueError:
            tails = f"{lower} / {upper}"
        if source == "mean":
            return f"mean recall of CORUM, hu.MAP, Reactome, StringDB ({tails})"
        return f"{_SOURCE_TITLES.get(source, source)} recall ({tails})"
    if match := re.match(r"^probe_balanced_accuracy_block(\d+)$", name):
        return f"linear probe balanced accuracy, block {match.group(1)}"
    if name == "probe_best_block":
        return "linear probe best block"
    if match := re.match(r"^replicate_consistency_(\w+)$", name):
        return f"replicate consistency ({match.group(1).upper()})"
    if match := re.match(r"^compound_gene_(ap|auc)_(.+)$", name):
        where = "best concentration" if match.group(2) == "max" else f"{match.group(2)} µM"
        return f"compound-gene {match.group(1).upper()} ({where})"
    return name.replace("_", " ")


def sort_metric_names(names) -> list[str]:
    """Metric names in reading order: recall mean, recall per source, replicate consistency, compound-gene, signal,
    probe (probe blocks numerically), anything else; alphabetical within a family."""

    def key(name: str):
        order, _, _ = metric_family(name)
        block = re.match(r"^probe_balanced_accuracy_block(\d+)$", name)
        return order, int(block.group(1)) if block else 0, name

    return sorted(set(names), key=key)


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
    "METRIC_FAMILIES",
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
    "metric_family",
    "metric_title",
    "phenom_bibtex",
    "sort_metric_names",
]
