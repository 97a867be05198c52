"""Known-relationship recall (paper.md §4a; EFAAR `known_relationship_benchmark` and `compute_recall`).

For each annotation source (CORUM, HuMAP, Reactome, SIGNOR, StringDB: `<SOURCE>.txt`, CSV `entity1,entity2`):

1. pairs are put in sorted order and deduplicated (a pair listed in both orientations counts once), self-pairs are
   dropped, and pairs with a gene that is not in the gene map are dropped;
2. null = every upper-triangle pairwise cosine similarity of the gene map (`null="genes"`, EFAAR), or of every row of
   the perturbation map (`null="all-rows"`, the RxRx3-core notebook: genes, the CRISPR control row and compounds at
   the RxRx3-core concentrations, compound-experiment controls left out); rows are scaled to unit length by
   scikit-learn's rule, so a row that is zero up to round-off (the CRISPR control row after centring) stays zero, as
   in EFAAR's `cosine_similarity`;
3. query = the cosine of each annotated pair, read from the same similarity matrix as the null (so a query value is
   tied exactly with its own entry in the null);
4. percentile ranks of a query value `q` in the null of size `N`: left = #{null < q} / N, right = #{null <= q} / N
   (`searchsorted` left and right);
5. recall at `(lower, upper)` = fraction of query pairs with right rank <= lower or left rank >= upper.

The similarity matrix is visited in row blocks (two passes: query values, then counts), so maps of tens of thousands
of rows need memory for one block, not for the whole matrix. Baselines: the same recall with the gene labels
permuted among the gene rows (one permutation per seed, mean reported).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import PerturbationMap
from .benchmark_common import unit_rows
from .context import BenchmarkNotApplicable
from .perturbations import COMPOUND, RXRX3_CORE_CONCENTRATIONS
from .results import threshold_name

BENCHMARK_SOURCES = ("CORUM", "HuMAP", "Reactome", "SIGNOR", "StringDB")
RECALL_THRESHOLDS = ((0.05, 0.95), (0.1, 0.9))
NULL_MODES = ("genes", "all-rows")
# Entries of one block of the similarity matrix (float64): 2**23 entries = 64 MiB.
BLOCK_ENTRIES = 2**23


def default_annotations_dir() -> Path:
    """`phenom_data.ANNOTATIONS_DIR` (the bundled EFAAR annotations), located without importing `phenom_data`,
    whose data readers load torch: evaluating an embeddings file needs neither a model nor torch."""
    spec = importlib.util.find_spec("phenom_data")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("phenom_data is not installed; pass an annotations folder")
    return Path(next(iter(spec.submodule_search_locations))) / "annotations"


def load_relationships(annotations_dir: str | Path, source: str) -> np.ndarray:
    """`[num_pairs, 2]` object array of annotated gene pairs: each pair sorted, unique, no self-pair (read-only;
    cached per file version, so evaluating several blocks reads each file once)."""
    path = Path(annotations_dir) / f"{source}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"annotation source {source!r} not found: expected {path} (CSV entity1,entity2)")
    status = path.stat()
    return _read_relationships(str(path.resolve()), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=16)
def _read_relationships(path: str, modified_ns: int, size: int) -> np.ndarray:
    pairs = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(pairs.columns[:2]) != ["entity1", "entity2"]:
        raise ValueError(f"{path}: expected columns entity1,entity2, got {list(pairs.columns)}")
    first, second = pairs["entity1"].to_numpy(dtype=object), pairs["entity2"].to_numpy(dtype=object)
    swap = second < first
    ordered = pd.DataFrame({"entity1": np.where(swap, second, first), "entity2": np.where(swap, first, second)})
    ordered = ordered[ordered["entity1"] != ordered["entity2"]].drop_duplicates()
    unique_pairs = ordered.to_numpy(dtype=object)
    unique_pairs.flags.writeable = False
    return unique_pairs


def null_rows(perturbation_map: PerturbationMap, null: str = "genes") -> PerturbationMap:
    """The rows whose pairwise cosines form the null (`genes` or `all-rows`, see the module docstring)."""
    if null == "genes":
        return perturbation_map.gene_rows()
    if null == "all-rows":
        compound = perturbation_map.modalities == COMPOUND
        standard = np.isin(perturbation_map.concentrations, RXRX3_CORE_CONCENTRATIONS)
        keep = ~(compound & perturbation_map.is_control) & (~compound | standard)
        return perturbation_map.select(keep)
    raise ValueError(f"unknown null {null!r}; choose one of {', '.join(NULL_MODES)}")


def _similarity_blocks(unit: np.ndarray, block_rows: int):
    for start in range(0, len(unit), block_rows):
        yield start, unit[start:start + block_rows] @ unit.T


def cosine_percentile_ranks(unit: np.ndarray, pairs: np.ndarray, block_rows: int | None = None):
    """Cosines of `pairs` and their left/right percentile ranks in the null of all upper-triangle cosines.

    Args:
        unit: `[num_rows, num_features]` unit-length rows (or zero rows).
        pairs: `[num_pairs, 2]` int row indices, first < second.
        block_rows: rows of the similarity matrix computed at once (default: `BLOCK_ENTRIES / num_rows`).

    Returns:
        `(values, left_ranks, right_ranks, null_size)`: `[num_pairs]` cosines, `[num_pairs]` #{null < value} / N and
        #{null <= value} / N, and N = num_rows * (num_rows - 1) / 2.
    """
    num_rows, num_pairs = len(unit), len(pairs)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if num_pairs and not (pairs[:, 0] < pairs[:, 1]).all():
        raise ValueError("pairs must be (first, second) row indices with first < second")
    null_size = num_rows * (num_rows - 1) // 2
    if null_size == 0:
        raise ValueError(f"the null needs at least 2 map rows, got {num_rows}")
    block_rows = block_rows or max(1, BLOCK_ENTRIES // num_rows)
    cached = list(_similarity_blocks(unit, block_rows)) if num_rows <= block_rows else None

    def blocks():
        return cached if cached is not None else _similarity_blocks(unit, block_rows)

    values = np.empty(num_pairs)
    for start, block in blocks():
        inside = (pairs[:, 0] >= start) & (pairs[:, 0] < start + len(block))
        values[inside] = block[pairs[inside, 0] - start, pairs[inside, 1]]
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # A null value x is < q_j exactly when j >= searchsorted(sorted_values, x, "right"), and <= q_j exactly when
    # j >= searchsorted(sorted_values, x, "left"): cumulative histograms of those positions count the null below q_j.
    below = np.zeros(num_pairs + 1, dtype=np.int64)
    at_or_below = np.zeros(num_pairs + 1, dtype=np.int64)
    columns = np.arange(num_rows)
    for start, block in blocks():
        upper = block[columns[None, :] > np.arange(start, start + len(block))[:, None]]
        below += np.bincount(np.searchsorted(sorted_values, upper, side="right"), minlength=num_pairs + 1)
        at_or_below += np.bincount(np.searchsorted(sorted_values, upper, side="left"), minlength=num_pairs + 1)
    left_counts, right_counts = np.empty(num_pairs, np.int64), np.empty(num_pairs, np.int64)
    left_counts[order] = np.cumsum(below)[:num_pairs]
    right_counts[order] = np.cumsum(at_or_below)[:num_pairs]
    return values, left_counts / null_size, right_counts / null_size, null_size


def recall_at(left_ranks: np.ndarray, right_ranks: np.ndarray, thresholds=RECALL_THRESHOLDS) -> dict:
    """`{"<lower>_<upper>": fraction of pairs with right rank <= lower or left rank >= upper}`."""
    if len(left_ranks) == 0:
        raise ValueError("recall of an empty query is undefined")
    recalls = {}
    for pair in thresholds:
        lower, upper = min(pair), max(pair)
        hits = (right_ranks <= lower) | (left_ranks >= upper)
        recalls[threshold_name(lower, upper)] = float(hits.mean())
    return recalls


@dataclass
class SourceRecall:
    """Recall of one annotation source.

    Args:
        source: `CORUM`, `HuMAP`, ...
        recall: `{"<lower>_<upper>": recall}`; empty when no annotated pair has both genes in the map.
        baseline: the same with gene labels permuted (mean over seeds).
        null_size: pairs in the null.
        query_size: annotated pairs with both genes in the map.
        annotated_pairs: unique non-self pairs in the source.
    """

    source: str
    recall: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    null_size: int = 0
    query_size: int = 0
    annotated_pairs: int = 0

    @property
    def pairs_missing_gene(self) -> int:
        return self.annotated_pairs - self.query_size


def _sorted_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.column_stack([np.minimum(first, second), np.maximum(first, second)])


def known_relationship_recall(perturbation_map: PerturbationMap, annotations_dir: str | Path, null: str = "genes",
                              sources=BENCHMARK_SOURCES, thresholds=RECALL_THRESHOLDS, seeds=(),
                              block_rows: int | None = None) -> list[SourceRecall]:
    """Recall of every source on the gene map of `perturbation_map` (see the module docstring).

    Raises `BenchmarkNotApplicable` (a `ValueError`) when the map has fewer than two genes (e.g. a compound-only
    screen), and `ValueError` when no source has an annotated pair with both genes in the map (the labels are
    probably not gene symbols).
    """
    genes = perturbation_map.gene_rows()
    if len(genes) < 2:
        raise BenchmarkNotApplicable(f"the gene map has {len(genes)} genes; known-relationship recall needs at least "
                                     "2 (gene wells, e.g. CRISPR '<GENE>_guide_<k>' or a gene symbol)")
    repeated = pd.Index(genes.labels).duplicated()
    if repeated.any():
        raise ValueError(f"genes with several map rows (CRISPR wells with different concentrations?): "
                         f"{list(genes.labels[repeated][:5])}")
    null_map = null_rows(perturbation_map, null)
    # Rows of the null matrix that hold the gene map's rows (the gene map is a subset of the null rows).
    gene_keys = list(zip(genes.labels, genes.perturbation_types, strict=True))
    null_index = {key: row for row, key in enumerate(zip(null_map.labels, null_map.perturbation_types, strict=True))}
    gene_rows_in_null = np.array([null_index[key] for key in gene_keys], dtype=np.int64)
    gene_position = pd.Index(genes.labels)
    permutations = [np.random.default_rng(seed).permutation(len(genes)) for seed in seeds]

    queries = {}
    for source in sources:
        pairs = load_relationships(annotations_dir, source)
        first, second = gene_position.get_indexer(pairs[:, 0]), gene_position.get_indexer(pairs[:, 1])
        present = (first >= 0) & (second >= 0)
        first, second = first[present], second[present]
        candidates = [_sorted_pairs(gene_rows_in_null[first], gene_rows_in_null[second])]
        candidates += [_sorted_pairs(gene_rows_in_null[perm[first]], gene_rows_in_null[perm[second]])
                       for perm in permutations]
        queries[source] = (len(pairs), int(present.sum()), candidates)
    all_pairs = np.concatenate([pair for _, _, candidates in queries.values() for pair in candidates]) \
        if queries else np.empty((0, 2), np.int64)
    unit = unit_rows(null_map.features)
    _, left, right, null_size = cosine_percentile_ranks(unit, all_pairs.reshape(-1, 2), block_rows)

    results, offset = [], 0
    for source, (annotated, query_size, candidates) in queries.items():
        result = SourceRecall(source, null_size=null_size, query_size=query_size, annotated_pairs=annotated)
        spans = []
        for pair in candidates:
            spans.append(slice(offset, offset + len(pair)))
            offset += len(pair)
        if query_size:
            result.recall = recall_at(left[spans[0]], right[spans[0]], thresholds)
            if permutations:
                per_seed = [recall_at(left[span], right[span], thresholds) for span in spans[1:]]
                result.baseline = {name: float(np.mean([seed[name] for seed in per_seed])) for name in per_seed[0]}
        results.append(result)
    if not any(result.query_size for result in results):
        raise ValueError(f"no annotated pair of {', '.join(sources)} has both genes in the map of {len(genes)} genes "
                         f"(e.g. {list(genes.labels[:5])}); the map labels must be gene symbols")
    return results


__all__ = [
    "default_annotations_dir",
    "BENCHMARK_SOURCES",
    "RECALL_THRESHOLDS",
    "NULL_MODES",
    "load_relationships",
    "null_rows",
    "cosine_percentile_ranks",
    "recall_at",
    "SourceRecall",
    "known_relationship_recall",
]
