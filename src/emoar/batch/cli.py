"""``emoar batch`` argument parsing and command (registered by :mod:`emoar.cli`; imports stay light)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``batch`` verb on the main parser's subparsers."""
    b = sub.add_parser("batch", help="analyse whole archives of images and videos (local pool or Ray)")
    b.set_defaults(func=cmd_batch)
    return b


def cmd_batch(args: argparse.Namespace) -> int:
    raise NotImplementedError("emoar batch is being built")
