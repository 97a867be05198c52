"""Run a `phenom` command in this process and kill it with SIGKILL at a named point: the kill -9 matrix of
`tests/test_kill_resume.py`.

    python tests/kill_points.py POINT N phenom-arguments...

The N-th time the process reaches POINT it sends itself SIGKILL: no exception, no `finally`, no atexit, exactly as
an OOM kill or `kill -9` mid-write. Each point wraps the real function at that spot (the write still happens up to
the point named); `none` runs the command untouched.
"""

import os
import re
import shutil
import signal
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def truncate(path) -> None:
    """Cut a file to half its size: what a kill in the middle of writing it leaves."""
    path = Path(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


class Trigger:
    def __init__(self, count: int):
        self.left = count

    def hit(self) -> bool:
        self.left -= 1
        return self.left == 0


def install(point: str, trigger: Trigger) -> None:
    if point == "none":
        return
    if point == "checkpoint-optimizer":  # pretrain: half of optimizer.bin written inside checkpoints/.tmp-step_N
        import accelerate.checkpointing as checkpointing

        real_save = checkpointing.save

        def save(obj, path, *args, **kwargs):
            real_save(obj, path, *args, **kwargs)
            if Path(path).name == "optimizer.bin" and trigger.hit():
                truncate(path)
                die()

        checkpointing.save = save
    elif point == "checkpoint-publish":  # pretrain: a complete .tmp-step_N, killed before its rename
        real_replace = os.replace

        def replace(source, target, *args, **kwargs):
            if Path(source).name.startswith(".tmp-step_") and trigger.hit():
                die()
            return real_replace(source, target, *args, **kwargs)

        os.replace = replace
    elif point == "checkpoint-prune":  # pretrain: an old checkpoint half deleted after the new one is in place
        real_rmtree = shutil.rmtree

        def rmtree(path, *args, **kwargs):
            path = Path(path)
            if re.fullmatch(r"step_\d+", path.name) and path.parent.name == "checkpoints" and trigger.hit():
                (path / "model.safetensors").unlink()
                die()
            return real_rmtree(path, *args, **kwargs)

        shutil.rmtree = rmtree
    elif point == "final-export":  # pretrain: final.tmp complete, the old final/ removed, not yet renamed
        real_replace = os.replace

        def replace(source, target, *args, **kwargs):
            if Path(target).name == "final" and trigger.hit():
                die()
            return real_replace(source, target, *args, **kwargs)

        os.replace = replace
    elif point == "log-line":  # pretrain: half a line of log.jsonl written
        import json

        from train.logging_utils import JsonlLog

        real_write = JsonlLog.write

        def write(self, record):
            if trigger.hit():
                with self.path.open("a") as handle:
                    line = json.dumps(record)
                    handle.write(line[: len(line) // 2])
                die()
            return real_write(self, record)

        JsonlLog.write = write
    elif point == "embed-part":  # embed: half of a part file written (its temporary name)
        import eval.embedding_store as store

        real_write_table = store.pq.write_table

        def write_table(table, where, *args, **kwargs):
            real_write_table(table, where, *args, **kwargs)
            if trigger.hit():
                truncate(where)
                die()

        store.pq.write_table = write_table
    elif point == "embed-merge":  # embed: the first block's output written, the others and the parts' removal not
        import eval.embedding_store as store

        real_write_embeddings = store.write_embeddings

        def write_embeddings(*args, **kwargs):
            real_write_embeddings(*args, **kwargs)
            if trigger.hit():
                die()

        store.write_embeddings = write_embeddings
    elif point == "synth-shard":  # synth: half of a shard written (its temporary name)
        import datasets

        real_to_parquet = datasets.Dataset.to_parquet

        def to_parquet(self, path, *args, **kwargs):
            result = real_to_parquet(self, path, *args, **kwargs)
            if trigger.hit():
                truncate(path)
                die()
            return result

        datasets.Dataset.to_parquet = to_parquet
    elif point == "synth-truth":  # synth: every shard and the metadata written, ground_truth.json not yet
        import phenom_data.synth  # noqa: F401  (the package's `generate` is the function; the module is below)

        generate = sys.modules["phenom_data.synth.generate"]

        real_write_json = generate.write_json

        def write_json(path, payload):
            if Path(path).name == "ground_truth.json" and trigger.hit():
                die()
            return real_write_json(path, payload)

        generate.write_json = write_json
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    point, count, *arguments = sys.argv[1:]
    install(point, Trigger(int(count)))
    from phenom.cli import main

    sys.exit(main(arguments))
