"""``python -m controlplane.demo``: the same as ``controlplane demo``."""

from __future__ import annotations

import argparse
import sys

from controlplane.cli.demo import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane.demo")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
