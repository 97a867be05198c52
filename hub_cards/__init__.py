"""Results -> Hugging Face model cards (model-index), leaderboards and publishing."""
