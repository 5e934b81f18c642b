"""``dbmigrate crd``: prints or writes the CRD generated from the API models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dbmigrate.api.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def register(subparsers: Any) -> None:
    """Add the ``crd`` sub-command."""
    parser = subparsers.add_parser(
        "crd",
        help="print a CRD (DatabaseMigration, MigrationRollback) generated from the API models",
        description="Generate the CRD YAML from the pydantic models (the single source of truth).",
    )
    parser.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    parser.add_argument(
        "--kind",
        choices=("DatabaseMigration", "MigrationRollback"),
        default="DatabaseMigration",
        help="which CRD (default DatabaseMigration)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if --output differs from what the models generate (for CI)",
    )
    parser.set_defaults(func=crd_command)


def crd_command(args: argparse.Namespace) -> int:
    """Write, print or check the generated CRD."""
    from dbmigrate.api.crd import render_crd_yaml

    text = render_crd_yaml(args.kind)
    target: Path | None = args.output
    if args.check:
        if target is None:
            print("--check needs --output FILE to compare against", file=sys.stderr)
            return EXIT_USAGE
        current = target.read_text() if target.exists() else ""
        if current != text:
            print(f"{target} is out of date: run `make crds` and commit it", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    if target is None:
        sys.stdout.write(text)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target}", file=sys.stderr)
    return EXIT_OK
