"""``emoar federated`` argument parsing and commands (registered by :mod:`emoar.cli`; imports stay
light: no torch or flwr until a command runs)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``federated`` verb (simulate / server / client) on the main parser's subparsers."""
    f = sub.add_parser("federated", help="federated learning on Flower: simulate, server, client")
    f.set_defaults(func=cmd_federated)
    return f


def cmd_federated(args: argparse.Namespace) -> int:
    raise NotImplementedError("emoar federated is being built")
