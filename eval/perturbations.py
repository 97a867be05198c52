"""What a perturbation, a control, a batch and a plate are: read once from the metadata through a column mapping.

Every step of `phenom eval` (batch correction, aggregation, every benchmark) reads these definitions from one
`WellDesign`, built by `describe_wells(metadata, mapping)`; nothing else looks at metadata column names or control
names. A `ColumnMapping` names the columns; two are built in (`METADATA_FORMATS`):

- `rxrx3-core` (the default; `metadata_rxrx3_core.csv`): perturbation `treatment`, negative controls
  `EMPTY_control` (what the correction is fitted on), and every other treatment containing `_control`
  (`CRISPR_control`) a control too: never scored, never fitted on. Batch `experiment_name`, plate `plate`, type
  `perturbation_type` (`CRISPR` = gene, `COMPOUND` = compound), concentration `concentration` (µM). A CRISPR
  well's gene is its treatment before `_guide_` (`RPLP2_guide_4` -> `RPLP2`).
- `jump` (JUMP-CP `Metadata_*` profiles with `plate.csv` joined): perturbation `Metadata_JCP2022`, negative
  controls `JCP2022_033924` (DMSO, compound plates), `JCP2022_800001` and `JCP2022_800002` (the CRISPR no-guide
  and non-targeting controls), batch and plate `Metadata_Plate` (JUMP's profiling recipe normalizes each plate on
  its negative controls), type `Metadata_PlateType` (`CRISPR` = gene; `COMPOUND`, `TARGET1`, `TARGET2`,
  `POSCON8`, `DMSO`, `COMPOUND_EMPTY` = compound plates; anything else, e.g. `ORF`, is another modality: a map
  row, never a gene or a compound), no concentration. A CRISPR well's gene symbol is joined from JUMP's
  `crispr.csv` (`Metadata_JCP2022` -> `Metadata_Symbol`), given as the annotations table. Without a `well_id`
  column, a well is `{Metadata_Source}_{Metadata_Plate}_{Metadata_Well}` (the LoadData reader's well id).

Rules: a column the mapping names must exist, except the plate and concentration of the built-in formats (absent:
no plates, no concentrations); metadata that cannot say what is a gene and what is a compound (no type column) is
an error naming the column, unless `genes_only` says every non-control well is a gene.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from phenom_data import RXRX3_CORE_CONCENTRATIONS

GENE, COMPOUND, OTHER = "gene", "compound", "other"
WELL_ID_COLUMN = "well_id"

# The mapping fields that name a single metadata column (`batch_cols` names several).
_COLUMN_FIELDS = ("perturbation_col", "plate_col", "type_col", "concentration_col")


@dataclass(frozen=True)
class ColumnMapping:
    """Which metadata columns and values say what each well is.

    Args:
        name: the format's name (`rxrx3-core`, `jump`), shown in results and errors.
        perturbation_col: the column naming each well's perturbation.
        control_keys: perturbation values of the negative controls: the wells batch correction is fitted on, the
            reference of signal magnitude and of mAP activity.
        control_pattern: perturbation values containing this text are controls too (never scored, never fitted
            on); None for none.
        batch_cols: the column(s) whose values, joined with `/`, name a correction batch.
        plate_col: the plate column (replicate consistency and mAP pair wells within batch x plate), or None.
        type_col: the column saying whether a well is a gene or a compound perturbation, or None (then
            `genes_only` must be set).
        gene_types, compound_types: `type_col` values of gene and compound wells; other values are another
            modality (map rows, never genes or compounds).
        concentration_col: compound concentration (µM), or None.
        guide_separator: a gene well's gene is its perturbation value before this text (None: the whole value).
        annotation_key_col, annotation_symbol_col: the annotations table's join column and gene-symbol column;
            when set and a table is given, a gene well's gene is the symbol of its perturbation value.
        well_id_cols: columns whose values, joined with `_`, make the well id when the metadata has no `well_id`
            (absent columns are left out).
        genes_only: every non-control well is a gene perturbation, whatever `type_col` says or lacks.
        optional: field names (`plate_col`, `concentration_col`) whose column may be absent from the metadata.
    """

    name: str = "rxrx3-core"
    perturbation_col: str = "treatment"
    control_keys: tuple[str, ...] = ("EMPTY_control",)
    control_pattern: str | None = "_control"
    batch_cols: tuple[str, ...] = ("experiment_name",)
    plate_col: str | None = "plate"
    type_col: str | None = "perturbation_type"
    gene_types: tuple[str, ...] = ("CRISPR",)
    compound_types: tuple[str, ...] = ("COMPOUND",)
    concentration_col: str | None = "concentration"
    guide_separator: str | None = "_guide_"
    annotation_key_col: str | None = None
    annotation_symbol_col: str | None = None
    well_id_cols: tuple[str, ...] = ()
    genes_only: bool = False
    optional: tuple[str, ...] = ("plate_col", "concentration_col")

    def __post_init__(self):
        if not self.control_keys:
            raise ValueError("a column mapping needs at least one control key (the negative controls)")
        if not self.batch_cols:
            raise ValueError("a column mapping needs at least one batch column")

    def with_options(self, **options) -> ColumnMapping:
        """A copy with `options` replaced (None values are ignored: "not given"). A column given explicitly must
        exist in the metadata; an empty string for `plate_col`, `type_col` or `concentration_col` means none."""
        given = {key: value for key, value in options.items() if value is not None}
        for key in _COLUMN_FIELDS[1:]:
            if given.get(key) == "":
                given[key] = None
        if "control_keys" in given:
            given["control_keys"] = tuple(given["control_keys"])
        if "batch_cols" in given:
            given["batch_cols"] = tuple(given["batch_cols"])
        optional = tuple(name for name in self.optional if name not in given)
        return dataclasses.replace(self, **given, optional=optional)


RXRX3_CORE = ColumnMapping()
JUMP_NEGATIVE_CONTROLS = ("JCP2022_033924", "JCP2022_800001", "JCP2022_800002")  # DMSO, no-guide, non-targeting
JUMP = ColumnMapping(
    name="jump",
    perturbation_col="Metadata_JCP2022",
    control_keys=JUMP_NEGATIVE_CONTROLS,
    control_pattern=None,
    batch_cols=("Metadata_Plate",),
    plate_col="Metadata_Plate",
    type_col="Metadata_PlateType",
    gene_types=("CRISPR",),
    compound_types=("COMPOUND", "TARGET1", "TARGET2", "POSCON8", "DMSO", "COMPOUND_EMPTY"),
    concentration_col=None,
    guide_separator=None,
    annotation_key_col="Metadata_JCP2022",
    annotation_symbol_col="Metadata_Symbol",
    well_id_cols=("Metadata_Source", "Metadata_Plate", "Metadata_Well"),
    optional=(),
)
METADATA_FORMATS = {"rxrx3-core": RXRX3_CORE, "jump": JUMP}


def with_well_ids(metadata: pd.DataFrame, mapping: ColumnMapping, source: str = "metadata") -> pd.DataFrame:
    """`metadata` with a `well_id` column: its own, or built from `mapping.well_id_cols` (an error when neither)."""
    if WELL_ID_COLUMN in metadata.columns or not mapping.well_id_cols:
        return metadata
    present = [column for column in mapping.well_id_cols if column in metadata.columns]
    required = mapping.well_id_cols[1:]  # JUMP: the source is a prefix only when the column exists
    missing = [column for column in required if column not in metadata.columns]
    if missing:
        raise ValueError(f"{source}: no '{WELL_ID_COLUMN}' column and no {missing} to build one from "
                         f"(the {mapping.name} well id is {'_'.join(mapping.well_id_cols)})")
    well_ids = metadata[present].astype(str).agg("_".join, axis=1)
    return metadata.assign(**{WELL_ID_COLUMN: well_ids.to_numpy(dtype=object)})


def read_annotations_table(path: str | Path, mapping: ColumnMapping) -> pd.Series:
    """`{perturbation value: gene symbol}` from a table such as JUMP's `crispr.csv(.gz)`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotations table not found: {path}")
    key, symbol = mapping.annotation_key_col, mapping.annotation_symbol_col
    if key is None or symbol is None:
        raise ValueError(f"the {mapping.name} metadata format joins no annotations table (use --metadata-format jump)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in (key, symbol) if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column {missing} (columns: {list(table.columns)})")
    table = table[[key, symbol]].drop_duplicates()
    conflicting = table[key][table[key].duplicated()].unique()
    if len(conflicting):
        raise ValueError(f"{path}: {len(conflicting)} {key} values have several {symbol}s, "
                         f"e.g. {list(conflicting[:5])}")
    return table.set_index(key)[symbol]


@dataclass(frozen=True)
class WellDesign:
    """What every well is, aligned with the metadata rows it was read from.

    Args:
        perturbation: `[num_wells]` label: a gene well's gene symbol, else the perturbation value.
        perturbation_type: `[num_wells]` the type column's text (the first gene type under `genes_only`).
        modality: `[num_wells]` `gene`, `compound` or `other`.
        concentration: `[num_wells]` float64, µM; NaN where there is none.
        is_negative_control: `[num_wells]` bool, the perturbation is one of the control keys.
        is_control: `[num_wells]` bool, a negative control or another control (`control_pattern`).
        batch: `[num_wells]` correction batch label.
        plate: `[num_wells]` plate label, or None without a plate column.
        mapping: the mapping this was read with.
    """

    perturbation: np.ndarray
    perturbation_type: np.ndarray
    modality: np.ndarray
    concentration: np.ndarray
    is_negative_control: np.ndarray
    is_control: np.ndarray
    batch: np.ndarray
    plate: np.ndarray | None
    mapping: ColumnMapping = field(default=RXRX3_CORE)

    def __len__(self) -> int:
        return len(self.perturbation)

    def batch_plate(self) -> np.ndarray:
        """`[num_wells]` `batch/plate` (plate numbers repeat across RxRx3-core experiments), or the batch alone."""
        batch = pd.Series(self.batch).astype(str)
        return (batch + "/" + pd.Series(self.plate).astype(str) if self.plate is not None else batch).to_numpy()

    def frame(self) -> pd.DataFrame:
        """`perturbation` and `concentration` of every well: what names a perturbation in the benchmarks that
        group wells (a compound at two concentrations is two perturbations; genes have NaN)."""
        return pd.DataFrame({"perturbation": self.perturbation, "concentration": self.concentration})

    def counts(self) -> dict:
        """Well counts per role and modality, and the mapping used (for `counts` in results)."""
        scored = ~self.is_control
        return {
            "metadata_format": self.mapping.name,
            "control_keys": ", ".join(self.mapping.control_keys),
            "gene_wells": int((scored & (self.modality == GENE)).sum()),
            "compound_wells": int((scored & (self.modality == COMPOUND)).sum()),
            "other_modality_wells": int((scored & (self.modality == OTHER)).sum()),
            "negative_control_wells": int(self.is_negative_control.sum()),
            "other_control_wells": int((self.is_control & ~self.is_negative_control).sum()),
        }


def _require_columns(metadata: pd.DataFrame, mapping: ColumnMapping, source: str, names: Sequence[str]) -> None:
    needed = [(name, getattr(mapping, name)) for name in names if name != "batch_cols" and getattr(mapping, name)]
    needed += [("batch_cols", column) for column in mapping.batch_cols if "batch_cols" in names]
    missing = [(name, column) for name, column in needed
               if column not in metadata.columns and name not in mapping.optional
               and not (name == "type_col" and mapping.genes_only)]
    if not missing:
        return
    flags = {"perturbation_col": "--perturbation-col", "batch_cols": "--batch-col", "plate_col": "--plate-col",
             "type_col": "--type-col", "concentration_col": "--concentration-col"}
    name, column = missing[0]
    if name == "type_col":
        raise ValueError(f"{source} has no '{column}' column, which says which wells are gene and which compound "
                         f"perturbations; name it with --type-col, or pass --genes-only if every non-control well is "
                         f"a gene (columns: {list(metadata.columns)})")
    raise ValueError(f"{source} has no '{column}' column for {flags[name]} ({mapping.name} format; columns: "
                     f"{list(metadata.columns)})")


def _values(metadata: pd.DataFrame, column: str | None) -> pd.Series | None:
    return metadata[column] if column is not None and column in metadata.columns else None


@dataclass(frozen=True)
class WellLabels:
    """Per well: `perturbation` label, `perturbation_type` text, `modality`, `is_negative_control`, `is_control`
    (the fields of `WellDesign` that need no batch or concentration)."""

    perturbation: np.ndarray
    perturbation_type: np.ndarray
    modality: np.ndarray
    is_negative_control: np.ndarray
    is_control: np.ndarray


def read_labels(metadata: pd.DataFrame, mapping: ColumnMapping = RXRX3_CORE, annotations: pd.Series | None = None,
                source: str = "the metadata") -> WellLabels:
    """What perturbation each row of `metadata` is, and whether it is a control (module docstring: the rules)."""
    _require_columns(metadata, mapping, source, ("perturbation_col", "type_col"))
    raw = metadata[mapping.perturbation_col]
    if raw.isna().any():
        rows = metadata.index[raw.isna()][:5].tolist()
        raise ValueError(f"{source}: {int(raw.isna().sum())} wells have no {mapping.perturbation_col} (rows {rows})")
    raw = raw.astype(str)
    is_negative_control = raw.isin(mapping.control_keys).to_numpy()
    is_control = is_negative_control.copy()
    if mapping.control_pattern:
        is_control |= raw.str.contains(mapping.control_pattern, regex=False).to_numpy()

    types = _values(metadata, mapping.type_col)
    if mapping.genes_only or types is None:
        perturbation_type = np.full(len(metadata), mapping.gene_types[0], dtype=object)
    else:
        perturbation_type = types.astype(str).to_numpy(dtype=object)
    modality = np.where(np.isin(perturbation_type, mapping.gene_types), GENE,
                        np.where(np.isin(perturbation_type, mapping.compound_types), COMPOUND, OTHER)).astype(object)

    labels = raw.to_numpy(dtype=object).copy()
    genes = (modality == GENE) & ~is_control
    if annotations is not None:
        symbols = raw[genes].map(annotations)
        unknown = raw[genes][symbols.isna()].unique()
        if len(unknown):
            raise ValueError(f"{source}: {len(unknown)} {mapping.perturbation_col} values of gene wells are not in "
                             f"the annotations table, e.g. {list(unknown[:5])}")
        labels[genes] = symbols.to_numpy(dtype=object)
    elif mapping.annotation_key_col is not None and genes.any():
        raise ValueError(f"{source}: {int(genes.sum())} gene wells are named by {mapping.perturbation_col} values "
                         f"(e.g. {list(raw[genes].unique()[:3])}); give the table of their gene symbols with "
                         "--annotations-table (JUMP: crispr.csv.gz)")
    elif mapping.guide_separator:
        labels[genes] = raw[genes].str.split(mapping.guide_separator, n=1, regex=False).str[0].to_numpy(dtype=object)
    return WellLabels(labels, perturbation_type, modality, is_negative_control, is_control)


def describe_wells(metadata: pd.DataFrame, mapping: ColumnMapping = RXRX3_CORE, annotations: pd.Series | None = None,
                   source: str = "the metadata") -> WellDesign:
    """Read what every row of `metadata` is (module docstring: the rules).

    Args:
        metadata: one row per well.
        mapping: the column mapping.
        annotations: `{perturbation value: gene symbol}` (`read_annotations_table`) for the gene wells, or None.
        source: how errors name the metadata.
    """
    _require_columns(metadata, mapping, source, _COLUMN_FIELDS + ("batch_cols",))
    labels = read_labels(metadata, mapping, annotations, source)
    concentrations = _values(metadata, mapping.concentration_col)
    concentration = (pd.to_numeric(concentrations, errors="coerce").to_numpy(dtype=np.float64)
                     if concentrations is not None else np.full(len(metadata), np.nan))
    batch_labels = metadata[list(mapping.batch_cols)].astype(str)
    batch = (batch_labels.iloc[:, 0] if len(mapping.batch_cols) == 1
             else batch_labels.agg("/".join, axis=1)).to_numpy(dtype=object)
    plates = _values(metadata, mapping.plate_col)
    return WellDesign(
        perturbation=labels.perturbation, perturbation_type=labels.perturbation_type, modality=labels.modality,
        concentration=concentration, is_negative_control=labels.is_negative_control, is_control=labels.is_control,
        batch=batch, plate=plates.astype(str).to_numpy(dtype=object) if plates is not None else None, mapping=mapping,
    )


def parse_names(values: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """Names given as repeated options and/or comma-separated text -> a tuple (None when not given)."""
    if values is None:
        return None
    values = [values] if isinstance(values, str) else values
    names = tuple(name.strip() for value in values for name in str(value).split(",") if name.strip())
    return names or None


__all__ = [
    "COMPOUND",
    "GENE",
    "JUMP",
    "JUMP_NEGATIVE_CONTROLS",
    "METADATA_FORMATS",
    "OTHER",
    "RXRX3_CORE",
    "RXRX3_CORE_CONCENTRATIONS",
    "ColumnMapping",
    "WellDesign",
    "WellLabels",
    "describe_wells",
    "parse_names",
    "read_annotations_table",
    "read_labels",
    "with_well_ids",
]
