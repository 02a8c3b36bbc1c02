"""The command line: thin commands over the library; `main` is the console script."""

from gimport.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
