"""Results -> Hugging Face model cards (model-index), leaderboards and publishing (DESIGN §7).

- results files are read and checked by `eval.results` (the one schema, shared with `phenom eval`).
- `hub_cards.card`: `card(...) -> CardResult` (`phenom card`), a `huggingface_hub.ModelCard` whose model-index
  holds every metric.
- `hub_cards.leaderboard`: `leaderboard(...) -> LeaderboardResult` (`phenom leaderboard`), one table across
  models and blocks (markdown, CSV, PNG).
- `hub_cards.publish`: the Hub operations of `--push` (`create_repo`, `upload_file`, `metadata_update`), or a dry run.

Their command lines are in `phenom/commands/`. Heavy libraries (torch, transformers, matplotlib) load only when
a function needs them.
"""

from .card import CardError, build_card, write_card
from .leaderboard import LeaderboardError, build_leaderboard, write_leaderboard
from .model_info import LicenseError, ModelSourceError, describe_model
from .publish import HubOperation, PublishError, plan_push

__all__ = [
    "CardError",
    "HubOperation",
    "LeaderboardError",
    "LicenseError",
    "ModelSourceError",
    "PublishError",
    "build_card",
    "build_leaderboard",
    "describe_model",
    "plan_push",
    "write_card",
    "write_leaderboard",
]
