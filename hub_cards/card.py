"""`phenom card`: benchmark results JSON -> a Hugging Face model card (`README.md`) whose `model-index` carries them.

    phenom card --results runs/eval --model runs/pretrain/final --out card/ [--repo-id org/name]
    phenom card --results runs/eval --model runs/pretrain/final --out card/ --push org/name [--dry-run]

The card is built with `huggingface_hub.ModelCard` / `ModelCardData` / `EvalResult` (DESIGN §7) and has the
sections people expect (STYLE rule 15, after DINOv2's MODEL_CARD.md): model details, uses and limitations, training
data and recipe, evaluation (with the random baseline and, labelled as such, the paper's own numbers), how to get
started, citation.

Model-index: one entry per metric, all under one task and one task name. huggingface_hub merges entries with the same
task and dataset into one result and keeps only the first one's task name (stack_notes.md), so nothing that tells
results apart may live there: block and correction go into the metric type, `<metric>/block<k>/<correction>`
(`recall_CORUM_0.05_0.95/block12/pca-centerscale`; results that span blocks, such as the probe's, have no block
part), and `ModelCard.load(path).data.eval_results` gives back every value exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from eval.benchmarks import metric_family, metric_title, sort_metric_names
from eval.results import EvalResults, read_all_results
from phenom_data.atomic import atomic_write_bytes, atomic_write_text
from phenom_data.paths import resolve_inside, safe_component

from .model_info import (
    ModelDescription,
    describe_model,
    resolve_license,
    training_datasets,
)
from .references import (
    CORRECTION_TITLES,
    OPENPHENOM_REPO_ID,
    OPENPHENOM_TRAINING,
    PAPER_RECALL_COLUMNS,
    PAPER_RECALL_METRICS,
    PAPER_RECALL_ROWS,
    PAPER_RECALL_SOURCE,
    PAPER_URL,
    PRESET_TITLES,
    RXRX3_CORE_BIBTEX,
    VITALLY_CONSISTENT_BIBTEX,
    dataset_identity,
    looks_like_hub_id,
    phenom_bibtex,
)

TASK_TYPE = "image-feature-extraction"
TASK_NAME = "Cell microscopy representation benchmarks"
TAGS = ["biology", "microscopy", "cell-painting", "mae", "phenom", "vision-transformer"]
RESULTS_FOLDER = "phenom_results"
MODEL_FILES_FOLDER = "model_files"  # under --out: the config files and Phenom source files --upload-model writes
GET_STARTED_HEADING = "## How to get started"


class CardError(ValueError):
    """Results that cannot go into one card as given (the message says why and what to pass)."""


# ----------------------------------------------------------------------------------------------- model-index
def model_index_metric_type(name: str, block: int | None, correction: str | None) -> str:
    """`<metric>/block<k>/<correction>`; the block part is left out for results that span blocks, the correction
    part when none was recorded."""
    parts = [name] + ([f"block{block}"] if block is not None else []) + ([correction] if correction else [])
    return "/".join(parts)


def eval_results_of(results: Sequence[EvalResults]) -> list:
    """One `EvalResult` per metric of every results file, in a stable order (dataset, block, correction, metric)."""
    from huggingface_hub import EvalResult

    entries = []
    for result in _ordered(results):
        dataset_type, dataset_name = dataset_identity(result.dataset)
        where = ", ".join(([result.block_label] if result.block is not None else [])
                          + ([_correction_title(result.correction)] if result.correction else []))
        for name in sort_metric_names(result.metrics):
            entries.append(EvalResult(
                task_type=TASK_TYPE, task_name=TASK_NAME, dataset_type=dataset_type, dataset_name=dataset_name,
                metric_type=model_index_metric_type(name, result.block, result.correction),
                metric_name=metric_title(name) + (f" ({where})" if where else ""), metric_value=result.metrics[name],
            ))
    return entries


def check_results(results: Sequence[EvalResults], allow_multiple_datasets: bool = False) -> None:
    """A card describes one model on one dataset (several only when asked), and every metric once."""
    if not results:
        raise CardError("no results to put in the card")
    models = {}
    for result in results:
        models.setdefault(result.model.rstrip("/\\"), result.path)
    if len(models) > 1:
        listed = "; ".join(f"{model!r} ({path})" for model, path in models.items())
        raise CardError(f"the results are for several models: {listed}. A card describes one model; compare "
                        "models with `phenom leaderboard`.")
    datasets: dict[str, list[Path]] = {}
    for result in results:
        datasets.setdefault(dataset_identity(result.dataset)[0], []).append(result.path)
    if len(datasets) > 1 and not allow_multiple_datasets:
        listed = "; ".join(f"{dataset!r} ({', '.join(str(path) for path in paths)})"
                           for dataset, paths in datasets.items())
        raise CardError(f"the results are for different datasets: {listed}. Pass --allow-multiple-datasets if this "
                        "card should report results on several datasets (each gets its own model-index entry).")
    seen: dict[tuple[str, str], Path] = {}
    for result in results:
        dataset_type = dataset_identity(result.dataset)[0]
        for name in result.metrics:
            key = (dataset_type, model_index_metric_type(name, result.block, result.correction))
            if key in seen:
                raise CardError(f"metric {name!r} ({result.block_label}, correction {result.correction}, dataset "
                                f"{dataset_type}) is reported twice: in {seen[key]} and in {result.path}")
            seen[key] = result.path


# ----------------------------------------------------------------------------------------------- the card
def build_card(results: Sequence[EvalResults], model: ModelDescription, *, repo_id: str | None = None,
               model_name: str | None = None, allow_multiple_datasets: bool = False, license: str | None = None,
               license_name: str | None = None, license_link: str | None = None, base_model: str | None = None):
    """The `huggingface_hub.ModelCard` for `model` with `results` in its model-index (module docstring).

    Args:
        repo_id: the Hub repo the card is for; the "how to get started" snippet loads it. Defaults to the model's
            repo id, else `your-username/<name>`.
        model_name: the model-index name; defaults to `repo_id` or the model directory's name.
        license, license_name, license_link: see `model_info.resolve_license` (OpenPhenom weights keep theirs).
        base_model: the Hub id the weights come from; `recursionpharma/OpenPhenom` for converted OpenPhenom weights.
    """
    from huggingface_hub import ModelCard, ModelCardData

    check_results(results, allow_multiple_datasets)
    license_fields, license_reason = resolve_license(model, license, license_name, license_link)
    name = model_name or repo_id or model.default_name
    repo_id = repo_id or model.repo_id or f"your-username/{_slug(name)}"
    base_model = base_model or (OPENPHENOM_REPO_ID if model.openphenom_derived and repo_id != OPENPHENOM_REPO_ID
                                else None)
    datasets = _unique([dataset_identity(result.dataset)[0] for result in results] + training_datasets(model))
    card_data = ModelCardData(
        model_name=name,
        library_name="transformers",
        pipeline_tag=TASK_TYPE,
        tags=list(TAGS),
        datasets=[dataset for dataset in datasets if looks_like_hub_id(dataset)] or None,
        base_model=base_model,
        eval_results=eval_results_of(results),
        **license_fields,
    )
    sections = [
        f"# {name}",
        _summary(model, license_fields),
        _model_details(model, license_fields, base_model),
        _uses_and_limitations(model, license_fields, license_reason),
        _training(model),
        _evaluation(results),
        _paper_numbers(),
        _get_started(repo_id, model, results),
        _citation(),
    ]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")


def write_card(card, out_dir: str | Path, results: Sequence[EvalResults]) -> tuple[Path, list[tuple[Path, str]]]:
    """Write `README.md` and a copy of every results file (under `phenom_results/`, the paths they get in the repo)
    into `out_dir`, atomically. Returns the card path and `(local file, path in repo)` of each results copy."""
    out_dir = Path(out_dir)
    copies = []
    for result, path_in_repo in zip(results, results_paths_in_repo(results), strict=True):
        target = resolve_inside(out_dir, path_in_repo, what="results copy")
        atomic_write_bytes(target, result.path.read_bytes())
        copies.append((target, path_in_repo))
    readme = atomic_write_text(out_dir / "README.md", str(card))
    return readme, copies


def results_paths_in_repo(results: Sequence[EvalResults]) -> list[str]:
    """`phenom_results/<dataset>/<block>[_<correction>].json`, unique per file. The dataset and correction come from
    results files (untrusted): each becomes one file-name component (`phenom_data.paths.safe_component`), so a
    crafted `correction` such as `x/../../name` stays a name inside `phenom_results/<dataset>/`."""
    paths: list[str] = []
    for result in results:
        stem = "all-blocks" if result.block is None else f"block{result.block}"
        stem += f"_{result.correction}" if result.correction else ""
        dataset = safe_component(_slug(dataset_identity(result.dataset)[1]), what="dataset name")
        base = f"{RESULTS_FOLDER}/{dataset}/{safe_component(stem, what='correction')}"
        candidate, number = f"{base}.json", 2
        while candidate in paths:
            candidate, number = f"{base}_{number}.json", number + 1
        paths.append(candidate)
    return paths


def get_started_snippet(card_text: str) -> str:
    """The Python code of the card's "How to get started" section, as written (what the tests run)."""
    section = card_text.split(GET_STARTED_HEADING, 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```python\n(.*?)```", section, flags=re.S))


# ----------------------------------------------------------------------------------------------- sections
def _summary(model: ModelDescription, license_fields: dict) -> str:
    kind = "channel-agnostic " if getattr(model.config, "channel_agnostic", False) else ""
    text = (f"A {kind}masked-autoencoder vision transformer for multi-channel Cell Painting microscopy, in the "
            "[Phenom](#citation) implementation of Recursion's microscopy MAEs ([ViTally Consistent: Scaling "
            f"Biological Representation Learning for Cell Microscopy]({PAPER_URL}), Kenyon-Dean et al., ICML 2025). "
            "It turns each well's channel images into an embedding; the evaluation below measures how well those "
            "embeddings recover known biology.")
    if license_fields.get("license") == "other":
        text += f"\n\n**License: {license_fields.get('license_name')} (non-commercial use only).**"
    return text


def _model_details(model: ModelDescription, license_fields: dict, base_model: str | None) -> str:
    config = model.config
    channel_agnostic = bool(getattr(config, "channel_agnostic", False))
    blocks = getattr(config, "num_hidden_layers", None)
    trimmed = getattr(config, "trim_encoder_blocks", None)
    rows = [
        ("Architecture", f"{'channel-agnostic ' if channel_agnostic else ''}ViT encoder of a masked autoencoder "
                         f"(`{type(config).__name__}`, model_type `{config.model_type}`)"),
        ("Preset", PRESET_TITLES.get(model.preset, model.preset) if model.preset else "custom geometry"),
        ("Image size (training crop)", f"{config.image_size} px"),
        ("Patch", f"{config.patch_size} x {config.patch_size} px"),
        ("Channels", f"any number (one shared patch embedding per channel; {config.num_channels} in the legacy "
                     "position table)" if channel_agnostic else f"{config.num_channels}"),
        ("Width / depth / heads / MLP", f"{config.hidden_size} / {blocks} / {config.num_attention_heads} / "
                                        f"{config.intermediate_size}"),
        ("Block", f"{getattr(config, 'block_type', 'parallel')} (qk-norm {getattr(config, 'qk_norm', '?')}, "
                  f"LayerScale {getattr(config, 'layer_scale_init_value', None)})"),
    ]
    if trimmed:
        rows.append(("Trimmed", f"keeps blocks 1..{trimmed} of {blocks} (paper.md §1.7)"))
    rows.append(("Encoder parameters", f"{model.encoder_parameters:,}"))
    if model.weight_file_parameters is not None and model.weight_file_parameters != model.encoder_parameters:
        rows.append(("Values in the weight file", f"{model.weight_file_parameters:,} (decoder included)"))
    rows.append(("Pretraining objective", f"MAE, mask ratio {getattr(config, 'mask_ratio', '?')}, "
                                          f"{getattr(config, 'decoder_type', '?')} decoder, Fourier loss weight "
                                          f"{getattr(config, 'fourier_loss_weight', '?')}"))
    rows.append(("Embedding", "`pooler_output`: mean of the patch tokens of the last block (CLS excluded); "
                              "`get_block_embeddings` for intermediate blocks"))
    if base_model:
        rows.append(("Base model", f"[{base_model}](https://huggingface.co/{base_model})"))
    license_text = license_fields["license"]
    if "license_name" in license_fields:
        license_text = license_fields["license_name"]
        if "license_link" in license_fields:
            license_text = f"[{license_text}]({license_fields['license_link']})"
    rows.append(("License", license_text))
    rows.append(("Paper", f"[ViTally Consistent (ICML 2025)]({PAPER_URL})"))
    return "## Model details\n\n" + _table(("", ""), rows)


def _uses_and_limitations(model: ModelDescription, license_fields: dict, license_reason: str) -> str:
    channels = "" if getattr(model.config, "channel_agnostic", False) else (
        f" This model needs exactly {model.config.num_channels} channels, in the order it was trained on.")
    front_matter = ", ".join(f"`{key}: {value}`" for key, value in license_fields.items())
    return f"""## Uses

### Intended uses
- Research on cell biology from Cell Painting images: well and perturbation embeddings for phenomic maps,
  known-relationship recall, compound-gene activity, clustering, and linear probes on the embeddings of any block.
- Benchmarking representation learning for microscopy (the evaluation below says how this model was measured).

### Out of scope
- Commercial use where the weights or the data they were trained on are licensed for non-commercial use only:
  Recursion licenses the RxRx datasets and the OpenPhenom weights for non-commercial use.
- Clinical or diagnostic decisions: the model was never validated for them.

### Limitations
- Embeddings carry batch effects (plate, experiment, illumination): correct them on control wells (PCA-CenterScale or
  TVN) before comparing wells across batches, as the evaluation does.
- The best features often sit in an intermediate block rather than the last one (the paper's block search); probe
  the blocks on your task.
- Trained and evaluated on the cell types and stains of its training data (RxRx3-style HUVEC Cell Painting for the
  Recursion models): other cell types, stains, magnifications or 16-bit dynamic ranges may need re-evaluation.
- Views are 8-bit crops of the processor's crop size; the model standardizes every image and channel itself.{channels}

### License
{license_reason} Front matter: {front_matter}."""


def _training(model: ModelDescription) -> str:
    lines = ["## Training data and recipe", ""]
    if model.openphenom_derived:
        return "\n".join(lines + [
            OPENPHENOM_TRAINING, "", f"These weights are a lossless conversion of [{OPENPHENOM_REPO_ID}]"
            f"(https://huggingface.co/{OPENPHENOM_REPO_ID}) into the Phenom format (`phenom convert`)."])
    if model.training_config is not None:
        datasets = training_datasets(model)
        lines.append(f"Trained with Phenom's `train/pretrain.py` (MAE pretraining with accelerate); the run's "
                     f"resolved config (`{model.training_config_path.name}`) follows."
                     + (f" Training data: {', '.join(f'`{d}`' for d in datasets)}." if datasets else ""))
        lines += ["", _table(("setting", "value"), _flatten(model.training_config))]
    else:
        lines.append("The training run is not recorded with these weights (pass `phenom card --training-config "
                     "<run>/config.yaml` to include its resolved config).")
    lines += ["", "Phenom's pretraining recipe follows the paper (Lion, betas (0.9, 0.95), weight decay 0.05, "
                  "linear-cosine warm-up over the first 10 % of steps, cosine decay; MSE + Fourier reconstruction "
                  "loss on masked tokens)."]
    return "\n".join(lines)


def _evaluation(results: Sequence[EvalResults]) -> str:
    lines = ["## Evaluation", "",
             f"Computed with `phenom eval` / `phenom probe` from {len(results)} results file(s). Every number below "
             "is also in this card's `model-index` (metric type `<metric>/block<k>/<correction>`) and in "
             f"`{RESULTS_FOLDER}/` of this repository. Values are `mean ± std` over seeds where several ran; the "
             "random baseline is the evaluation's own null for the same metric."]
    groups: dict[tuple[str, str | None], list[EvalResults]] = {}
    for result in _ordered(results):
        groups.setdefault((dataset_identity(result.dataset)[1], result.correction), []).append(result)
    for (dataset_name, correction), members in groups.items():
        title = [dataset_name] + ([_correction_title(correction)] if correction else [])
        title += ["across blocks"] if all(member.block is None for member in members) else []
        lines += ["", f"### {', '.join(title)}", ""]
        names = sort_metric_names(name for member in members for name in member.metrics)
        header = ("metric", *[member.block_label for member in members], "random baseline")
        rows = []
        for name in names:
            cells = [_value(member.metrics.get(name), member.metrics_std.get(name)) for member in members]
            baselines = _unique([_number(member.baselines[name]) for member in members if name in member.baselines])
            rows.append((f"`{name}`", *cells, " / ".join(baselines) or "—"))
        lines.append(_table(header, rows))
        counts = _unique([_describe(member.counts) for member in members if member.counts])
        if counts:
            lines += ["", "Counts: " + " | ".join(counts) + "."]
    families = _unique([metric_family(name)[1:] for result in results for name in result.metrics])
    lines += ["", "Metrics:", ""] + [f"- **{family}**: {description}." for family, description in families]
    reproducibility = _unique(["; ".join(([f"seeds {result.seeds}"] if result.seeds is not None else [])
                                         + ([f"versions {_describe(result.versions)}"] if result.versions else []))
                               for result in results if result.seeds is not None or result.versions])
    if reproducibility:
        lines += ["", "Reproducibility: " + " | ".join(reproducibility) + "."]
    return "\n".join(lines)


def _paper_numbers() -> str:
    rows = [(method, *[f"{value:.3f}" for value in values]) for method, values in PAPER_RECALL_ROWS]
    metrics = ", ".join(f"`{name}`" for name in PAPER_RECALL_METRICS)
    return (
        "### As reported by the paper (its own null; not comparable one to one)\n\n"
        f"{PAPER_RECALL_SOURCE}. These numbers come from the authors' pipeline and their own null distribution (built "
        "from all map rows, compounds and controls included), so they give context and are not a one-to-one "
        f"comparison with the numbers above; the closest metrics of this card are {metrics}. Quoted from a "
        "secondary source; check them against the paper before relying on them.\n\n"
        + _table(("method", *PAPER_RECALL_COLUMNS), rows)
    )


def _get_started(repo_id: str, model: ModelDescription, results: Sequence[EvalResults]) -> str:
    config = model.config
    channels = 6 if getattr(config, "channel_agnostic", False) else int(config.num_channels)
    processor = (f'PhenomImageProcessor.from_pretrained("{repo_id}")' if model.has_preprocessor_config
                 else "PhenomImageProcessor()  # the RxRx defaults: 256 px views")
    best_blocks = _unique([result.metrics["probe_best_block"] for result in results
                           if isinstance(result.metrics.get("probe_best_block"), int)])
    block_lines = ""
    if len(best_blocks) == 1:
        block = best_blocks[0]
        block_lines = f"""
# Pooled embedding of block {block}, the block the linear probe recommends (blocks are numbered from 1).
with torch.inference_mode():
    block_embedding = model.get_block_embeddings(inputs["pixel_values"], blocks=[{block}])[{block}].mean(dim=0)
print(block_embedding.shape)  # torch.Size([{config.hidden_size}])
"""
    remote_code = ("\n\nWithout Phenom, the Phenom source files in this repository load it: "
                   f'`AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)` (likewise `AutoImageProcessor` '
                   'and `pipeline("image-feature-extraction", ...)`).' if model.raw_config.get("auto_map") else "")
    return f"""{GET_STARTED_HEADING}

Install the Phenom package (distribution `phenom-microscopy`; from its repository: `pip install .`);
`import modeling_phenom` registers the model with the transformers Auto classes, so no remote code runs.{remote_code}

```python
import numpy as np
import torch
from transformers import AutoModel

import modeling_phenom  # registers Phenom with the transformers Auto classes
from modeling_phenom import PhenomImageProcessor

model = AutoModel.from_pretrained("{repo_id}").eval()
processor = {processor}

# One well: {channels} channel images (8-bit) of twice the crop size, 512 x 512 px in RxRx3-core. Use your own images.
size = 2 * processor.crop_size
well = np.random.default_rng(0).integers(0, 256, size=({channels}, size, size), dtype=np.uint8)
inputs = processor(well)  # pixel_values: uint8 [4, {channels}, crop, crop], the four tiles
with torch.inference_mode():
    outputs = model(**inputs)
well_embedding = outputs.pooler_output.mean(dim=0)  # mean of patch tokens, averaged over the tiles
print(well_embedding.shape)  # torch.Size([{config.hidden_size}])
{block_lines}```"""


def _citation() -> str:
    return (
        "## Citation\n\n"
        "The model family and benchmarks:\n\n```bibtex\n" + VITALLY_CONSISTENT_BIBTEX + "\n```\n\n"
        "The RxRx3-core benchmark and the recall numbers quoted above:\n\n```bibtex\n" + RXRX3_CORE_BIBTEX
        + "\n```\n\nThe Phenom package:\n\n```bibtex\n" + phenom_bibtex(_package_version()) + "\n```"
    )


# ----------------------------------------------------------------------------------------------- helpers
def _ordered(results: Sequence[EvalResults]) -> list[EvalResults]:
    # Per-block results first (by correction, then block), results across blocks (the probe) last.
    return sorted(results, key=lambda result: (dataset_identity(result.dataset)[0], result.block is None,
                                               result.correction or "", result.block or 0))


def _correction_title(correction: str | None) -> str:
    return CORRECTION_TITLES.get(correction, correction) if correction else "no correction recorded"


def _number(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _value(value, std) -> str:
    if value is None:
        return "—"
    return _number(value) + (f" ± {std:.2g}" if std is not None else "")


def _describe(value) -> str:
    """`key value, key value` for a flat mapping (nested values as written), anything else as text."""
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items())
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    def line(cells):
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header))] + [line(row) for row in rows])


def _flatten(mapping: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"`{prefix}{key}`", f"`{value}`"))
    return rows


def _unique(items) -> list:
    unique = []
    for item in items:
        if item not in unique:
            unique.append(item)
    return unique


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.split("/")[-1]).strip("-") or "model"


def _package_version() -> str:
    try:
        return metadata.version("phenom")
    except metadata.PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------------------------- the command's work
@dataclass(frozen=True)
class CardResult:
    """What `card` wrote and did.

    Attributes:
        readme: the card, `<out>/README.md`.
        results_copies: `(local file, path in repo)` of every results copy (under `<out>/phenom_results/`).
        num_metrics: entries in the card's model-index.
        operations: the Hub operations of the push, in order (empty without `push`); run unless `dry_run`.
        outcomes: what each operation returned, in the same order (empty for a dry run or no push).
    """

    readme: Path
    results_copies: list[tuple[Path, str]]
    num_metrics: int
    operations: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)


def card(results: Sequence[str | Path], model: str, out: str | Path, *, repo_id: str | None = None,
         name: str | None = None, revision: str | None = None, cache_dir: str | Path | None = None,
         training_config: str | Path | None = None, allow_multiple_datasets: bool = False,
         license: str | None = None, license_name: str | None = None, license_link: str | None = None,
         base_model: str | None = None, push: str | None = None, dry_run: bool = False,
         metadata_only: bool = False, create_pr: bool = False, upload_model: bool = False,
         private: bool = False) -> CardResult:
    """`phenom card`: read the results files (or folders), describe `model` (a save_pretrained directory or a Hub
    id), write `<out>/README.md` and the results copies, and with `push` publish them (`hub_cards.publish`).

    `repo_id` defaults to `push`; the other card arguments are `build_card`'s. `dry_run`, `metadata_only`,
    `upload_model` and `private` need `push`, `create_pr` needs `metadata_only`. Raises `CardError` (and the
    `ValueError`s of `read_all_results` / `describe_model`) for bad input, `PublishError` when a push cannot start
    (no token, offline: checked before any work) or the Hub refuses an operation.
    """
    from .publish import execute, plan_push, require_push_credentials, stage_model_files

    for flag, value in (("dry_run", dry_run), ("metadata_only", metadata_only), ("upload_model", upload_model),
                        ("private", private)):
        if value and not push:
            raise CardError(f"--{flag.replace('_', '-')} needs --push REPO_ID")
    if create_pr and not metadata_only:
        raise CardError("--create-pr needs --metadata-only (upload_file commits each file on its own)")
    # Refuse before any work: a push without credentials would fail only after the card is built.
    token = None if dry_run or not push else require_push_credentials()
    read = read_all_results(results)
    description = describe_model(model, revision=revision, training_config=training_config, cache_dir=cache_dir)
    if upload_model and description.local_dir is None:
        raise CardError("--upload-model needs a local --model directory")
    built = build_card(read, description, repo_id=repo_id or push, model_name=name,
                       allow_multiple_datasets=allow_multiple_datasets, license=license, license_name=license_name,
                       license_link=license_link, base_model=base_model)
    readme, copies = write_card(built, out, read)
    operations, outcomes = [], []
    if push:
        model_files = stage_model_files(description.local_dir, Path(out) / MODEL_FILES_FOLDER) if upload_model else []
        operations = plan_push(push, readme, copies, card_metadata=built.data.to_dict(), metadata_only=metadata_only,
                               create_pr=create_pr, private=private, model_files=model_files)
        if not dry_run:
            outcomes = execute(operations, token)
    return CardResult(readme, copies, len(built.data.eval_results), operations, outcomes)


__all__ = [
    "CardError",
    "CardResult",
    "TASK_NAME",
    "TASK_TYPE",
    "build_card",
    "card",
    "check_results",
    "eval_results_of",
    "get_started_snippet",
    "model_index_metric_type",
    "results_paths_in_repo",
    "write_card",
]
