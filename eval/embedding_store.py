"""Incremental, resumable storage of well embeddings while `phenom embed` runs, and the final merge.

While embedding, every process appends part files to `<out>.parts/` (next to the output), each written atomically
(temporary name, then rename), so a part is either complete or absent: `part-r<rank>-<run>-<n>.parquet` with a
`well_id` column (and `site` for per-site rows; a well's rows are always in one part) and one fixed-size float32
list column `block<k>` per block. `settings.json` in that folder pins what the parts were computed with: the
fingerprints of the model's files and of the data (content, not paths: `phenom_data.fingerprint`), the blocks and
every option that changes an embedding. Parts written with other settings are never mixed in: a run is refused with
what differs. With `overwrite` a run starts again from no parts (resuming is the same command without
`--overwrite`). Settings without any part yet (a run that failed before its first part) bind nothing and are
replaced.

On restart, `done_well_ids()` reads the well ids of every part (whichever process wrote it), so an interrupted run
resumes with no well lost or embedded twice, also with another number of processes. `merge()` checks that no well
appears twice, sorts the wells by `well_id` (the output does not depend on the number of processes), writes one file
per block in the official embeddings layout (DESIGN §6) and removes the parts.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from phenom_data.atomic import atomic_path, atomic_write_json
from phenom_data.fingerprint import differences

from .embeddings_file import SITE_COLUMN, WELL_ID_COLUMN, write_embeddings


def block_paths(out: str | os.PathLike, blocks: list[int], suffix: str = ".parquet") -> dict[int, Path]:
    """`{block: path}`: `out` itself for one block, `<stem>_block<k><suffix>` beside it for several."""
    out = Path(out)
    if len(blocks) == 1:
        return {blocks[0]: out.with_suffix(suffix)}
    stem = out.name.removesuffix(out.suffix) if out.suffix else out.name
    return {block: out.with_name(f"{stem}_block{block}{suffix}") for block in blocks}


def parts_folder(out: str | os.PathLike) -> Path:
    """The parts folder of output `out`: `<out>.parts` beside it."""
    out = Path(out)
    return out.with_name(f"{out.name}.parts")


class EmbeddingStore:
    """Part files of one embedding run.

    Args:
        out: the output path given to `phenom embed` (`<name>.parquet`).
        blocks: block numbers embedded (sorted).
        settings: what must match for parts to be resumed (model, data, blocks, ...), JSON-serializable.
    """

    def __init__(self, out: str | os.PathLike, blocks: list[int], settings: dict):
        self.out = Path(out)
        self.blocks = list(blocks)
        self.settings = {**settings, "blocks": self.blocks}
        self.parts_dir = parts_folder(self.out)
        self.run_id = uuid.uuid4().hex[:8]
        self.num_parts_written = 0

    def prepare(self, overwrite: bool = False) -> None:
        """Create the parts folder, or check that the parts in an existing one were written with the same settings
        (module docstring); `overwrite` deletes existing parts first (the run starts again)."""
        settings_path = self.parts_dir / "settings.json"
        for stale in self.parts_dir.glob(".part-*.tmp"):  # a part being written when its run was killed
            stale.unlink()
        if overwrite:
            self.remove()
        elif self.part_files():
            existing = json.loads(settings_path.read_text()) if settings_path.is_file() else None
            if existing != self.settings:
                found = differences(existing, self.settings) if existing is not None else ["no settings.json"]
                raise ValueError(f"{self.parts_dir} holds {len(self.part_files())} parts of an embedding run with "
                                 f"other settings ({'; '.join(found)}); rerun with the same options and data to "
                                 "resume it, or pass --overwrite to discard those parts and start again")
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(settings_path, self.settings)

    def part_files(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.parquet")) if self.parts_dir.is_dir() else []

    def done_well_ids(self) -> set[str]:
        """Well ids already in part files (from any process and any earlier run; a well's rows are written
        together, so a well listed here is complete)."""
        done = set()
        for path in self.part_files():
            done.update(pq.read_table(path, columns=[WELL_ID_COLUMN]).column(WELL_ID_COLUMN).to_pylist())
        return done

    def write_part(self, rank: int, well_ids: list[str], features: dict[int, np.ndarray],
                   sites: list[str] | None = None) -> Path:
        """Append one part, atomically: `well_ids` `[num_rows]` (with `sites` `[num_rows]` for per-site rows) and
        `{block: [num_rows, hidden_size] float32}`. Every row of a well must be in the same part."""
        columns = {WELL_ID_COLUMN: pa.array(well_ids, type=pa.string())}
        if sites is not None:
            if len(sites) != len(well_ids):
                raise ValueError(f"{len(sites)} sites for {len(well_ids)} rows")
            columns[SITE_COLUMN] = pa.array(sites, type=pa.string())
        for block in self.blocks:
            values = np.ascontiguousarray(features[block], dtype=np.float32)
            if values.shape[0] != len(well_ids):
                raise ValueError(f"block {block}: {values.shape[0]} embeddings for {len(well_ids)} wells")
            columns[f"block{block}"] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
        path = self.parts_dir / f"part-r{rank:04d}-{self.run_id}-{self.num_parts_written:06d}.parquet"
        with atomic_path(path) as temporary:
            pq.write_table(pa.table(columns), temporary)
        self.num_parts_written += 1
        return path

    def read_parts(self) -> tuple[np.ndarray, np.ndarray | None, dict[int, np.ndarray]]:
        """All parts: `(well_ids [num_rows], sites [num_rows] or None, {block: [num_rows, hidden_size] float32})`,
        sorted by well id (a well's site rows stay in the order they were written)."""
        tables = [pq.read_table(path) for path in self.part_files()]
        if not tables:
            raise ValueError(f"no embeddings were written to {self.parts_dir}: no well was read from the data "
                             "(the reader's summary above says why)")
        table = pa.concat_tables(tables)
        well_ids = np.asarray(table.column(WELL_ID_COLUMN).to_pylist(), dtype=object)
        sites = (np.asarray(table.column(SITE_COLUMN).to_pylist(), dtype=object)
                 if SITE_COLUMN in table.column_names else None)
        keys = well_ids if sites is None else np.asarray([f"{well} site {site}" for well, site in
                                                          zip(well_ids, sites, strict=True)], dtype=object)
        unique, counts = np.unique(keys, return_counts=True)
        if (counts > 1).any():
            what = "wells" if sites is None else "sites"
            raise ValueError(f"{int((counts > 1).sum())} {what} were embedded more than once in {self.parts_dir}, "
                             f"e.g. {list(unique[counts > 1][:5])}; pass --overwrite to embed them again")
        order = np.argsort(well_ids, kind="stable")
        features = {}
        for block in self.blocks:
            column = table.column(f"block{block}").combine_chunks()
            values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(table), column.type.list_size)
            features[block] = values[order]
        return well_ids[order], None if sites is None else sites[order], features

    def remove(self) -> None:
        """Delete the parts folder (after the final files are written)."""
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def merge(self, provenance: dict) -> dict[int, Path]:
        """Write the final parquet file of every block, then remove the parts; returns `{block: path}`."""
        well_ids, sites, features = self.read_parts()
        paths = block_paths(self.out, self.blocks)
        for block, path in paths.items():
            write_embeddings(path, well_ids, features[block], provenance={**provenance, "block": block}, sites=sites)
        self.remove()
        return paths


__all__ = ["block_paths", "EmbeddingStore", "parts_folder"]
