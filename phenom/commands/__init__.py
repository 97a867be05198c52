"""The command layer: one module per `phenom` subcommand (`-` in the name becomes `_`), each with
`build_parser(prog) -> argparse.ArgumentParser` and `main(argv=None, prog=None) -> int` (wrapped with
`phenom_data.errors.command`). A `main` parses, calls the typed library function that does the work and prints its
summary; the work, its errors and its progress live in the library (DESIGN §2, STYLE rule 16)."""
