"""The `phenom` command (see `phenom --help`). The library lives in `modeling_phenom`, `phenom_data`, `train`,
`eval` and `hub_cards`."""

__version__ = "0.1.0"
