"""Results -> Hugging Face model cards (model-index), leaderboards and publishing (DESIGN §7).

- `hub_cards.results`: read and check the results JSON of `phenom eval` / `phenom probe`.
- `hub_cards.card`: `phenom card`, a `huggingface_hub.ModelCard` whose model-index holds every metric.
- `hub_cards.leaderboard`: `phenom leaderboard`, one table across models and blocks (markdown, CSV, PNG).
- `hub_cards.publish`: the Hub operations of `--push` (`create_repo`, `upload_file`, `metadata_update`), or a dry run.

Heavy libraries (torch, transformers, matplotlib) load only when a function needs them.
"""

from .card import CardError, build_card, write_card
from .leaderboard import LeaderboardError, build_leaderboard, write_leaderboard
from .model_info import LicenseError, ModelSourceError, describe_model
from .publish import HubOperation, PublishError, plan_push
from .results import BenchmarkResults, ResultsError, read_all_results, read_results

__all__ = [
    "BenchmarkResults",
    "CardError",
    "HubOperation",
    "LeaderboardError",
    "LicenseError",
    "ModelSourceError",
    "PublishError",
    "ResultsError",
    "build_card",
    "build_leaderboard",
    "describe_model",
    "plan_push",
    "read_all_results",
    "read_results",
    "write_card",
    "write_leaderboard",
]
