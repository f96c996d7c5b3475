"""Shared fixtures: real data from ``../shared/data`` (override with ``EMOAR_SHARED_DATA``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMOAR_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"Shared test data not found at {SHARED_DATA} (set EMOAR_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def photos_dir(data_dir: Path) -> Path:
    return data_dir / "photos"


@pytest.fixture(scope="session")
def fer_csv(data_dir: Path) -> Path:
    return data_dir / "fer2013" / "fer2013.csv.gz"
