"""Fixtures for the federated tests: small FER2013 slices and ``<class>/`` client folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def fer_splits(fer_csv: Path) -> dict:
    from emoar.train.data import load_fer2013_csv

    return load_fer2013_csv(fer_csv)


def make_client_folder(root: Path, ds, rows: np.ndarray) -> Path:
    """FER rows written as ``root/<class>/<row>.png`` (the layout ``emoar train`` reads)."""
    import cv2

    for i in rows:
        d = root / ds.label_names[int(ds.labels[i])]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{int(i)}.png"), ds.images[i])
    return root


@pytest.fixture
def client_folders(tmp_path: Path, fer_splits: dict) -> list[Path]:
    tr = fer_splits["Training"]
    return [make_client_folder(tmp_path / f"client{c}", tr, np.arange(c * 40, c * 40 + 40)) for c in range(2)]
