"""`phenom card`: the command line of `hub_cards.card.card` (a model card from results JSON; `--push` to the Hub).

    phenom card --results runs/eval --model runs/pretrain/final --out card/ [--repo-id org/name]
    phenom card --results runs/eval --model runs/pretrain/final --out card/ --push org/name [--dry-run]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hub_cards.card import card
from hub_cards.publish import PublishError
from phenom_data.errors import command, report_error


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a Hugging Face model card (README.md) whose model-index holds benchmark results, and "
                    "optionally push it to the Hub.",
        epilog="examples:\n"
               "  phenom card --results runs/eval --model runs/pretrain/final --out card/\n"
               "  phenom card --results runs/eval runs/probe --model runs/pretrain/final --out card/ "
               "--push me/phenom-s16 --dry-run",
    )
    parser.add_argument("--results", nargs="+", required=True, metavar="PATH",
                        help="results.json files, or folders holding results.json or block<k>/results.json")
    parser.add_argument("--model", required=True, help="the model: a save_pretrained directory or a Hub repo id")
    parser.add_argument("--out", required=True, type=Path, help="folder for README.md and the results copies "
                                                                    "(and model_files/ with --upload-model)")
    parser.add_argument("--repo-id", help="the Hub repo the card is for (used by the how-to snippet); defaults to "
                                          "--push, else the model's repo id")
    parser.add_argument("--name", help="model name in the card and its model-index (default: repo id or folder)")
    parser.add_argument("--revision", help="revision of a Hub --model")
    parser.add_argument("--cache-dir", type=Path, help="Hugging Face cache for a Hub --model (default: HF_HUB_CACHE)")
    parser.add_argument("--training-config", type=Path,
                        help="the training run's resolved config.yaml (default: found beside the model directory)")
    parser.add_argument("--allow-multiple-datasets", action="store_true",
                        help="accept results on different datasets in one card")
    parser.add_argument("--license", help="license of the weights (SPDX id or 'other'; converted OpenPhenom weights "
                                          "always keep Recursion's non-commercial license)")
    parser.add_argument("--license-name", help="license name when --license other")
    parser.add_argument("--license-link", help="license link when --license other")
    parser.add_argument("--base-model", help="Hub id of the model these weights derive from")
    push = parser.add_argument_group("publishing (huggingface_hub)")
    push.add_argument("--push", metavar="REPO_ID", help="push the card (and the results copies) to this Hub repo")
    push.add_argument("--dry-run", action="store_true", help="with --push: write the files and print the exact Hub "
                                                             "operations without running them")
    push.add_argument("--metadata-only", action="store_true",
                      help="with --push: merge front matter and model-index into the repo's existing README with "
                           "metadata_update instead of replacing it")
    push.add_argument("--create-pr", action="store_true", help="with --metadata-only: open a pull request")
    push.add_argument("--upload-model", action="store_true",
                      help="with --push: also upload the files of the local --model directory, with the Phenom "
                           "source files and auto_map the Hub needs to load it without Phenom "
                           "(trust_remote_code=True); written to OUT/model_files first")
    push.add_argument("--private", action="store_true", help="with --push: create the repo private")
    return parser



@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        result = card(args.results, args.model, args.out, repo_id=args.repo_id, name=args.name,
                      revision=args.revision, cache_dir=args.cache_dir, training_config=args.training_config,
                      allow_multiple_datasets=args.allow_multiple_datasets, license=args.license,
                      license_name=args.license_name, license_link=args.license_link, base_model=args.base_model,
                      push=args.push, dry_run=args.dry_run, metadata_only=args.metadata_only,
                      create_pr=args.create_pr, upload_model=args.upload_model, private=args.private)
    except PublishError as error:  # a RuntimeError (the Hub's side), reported like a user error
        return report_error(prog or "phenom card", error)
    print(f"wrote {result.readme} ({result.num_metrics} model-index metrics) and {len(result.results_copies)} "
          "results copies")
    if result.operations and args.dry_run:
        print(f"dry run: {len(result.operations)} huggingface_hub operations would run, in this order (token "
              "omitted):")
    for number, operation in enumerate(result.operations, start=1):
        if args.dry_run:
            print(f"{number}. {operation.describe()}")
        else:
            print(f"{number}/{len(result.operations)} {operation.function}: {result.outcomes[number - 1]}")
    return 0


__all__ = ["build_parser", "main"]
