"""Client partitions of a labelled dataset: IID or label-skewed Dirichlet(alpha).

The same maths as ``flwr_datasets.partitioner.DirichletPartitioner`` (per class, a Dirichlet
draw of client shares; redrawn until every client has ``min_size`` rows), written on index
arrays so it runs on the in-memory FER2013 split without ``datasets``. Seeded; saved as
``.npz`` so a run (and ``--resume``) uses exactly the same rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["Partitions", "dirichlet_partition", "iid_partition", "make_partitions"]

Index = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Partitions:
    """Row indices (into the partitioned dataset) of each client's train and validation rows."""

    train: tuple[Index, ...]
    val: tuple[Index, ...]
    alpha: float  # 0 = IID
    seed: int

    @property
    def num_clients(self) -> int:
        return len(self.train)

    def rows(self, cid: int) -> Index:
        return np.concatenate([self.train[cid], self.val[cid]])

    def save(self, path: str | os.PathLike[str]) -> None:
        arrays: dict[str, np.ndarray] = {"alpha": np.array(self.alpha), "seed": np.array(self.seed)}
        for i, (t, v) in enumerate(zip(self.train, self.val, strict=True)):
            arrays[f"train_{i}"] = t
            arrays[f"val_{i}"] = v
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)  # type: ignore[arg-type]

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Partitions:
        with np.load(path) as z:
            n = sum(1 for k in z.files if k.startswith("train_"))
            return Partitions(
                tuple(z[f"train_{i}"].astype(np.int64) for i in range(n)),
                tuple(z[f"val_{i}"].astype(np.int64) for i in range(n)),
                float(z["alpha"]),
                int(z["seed"]),
            )


def iid_partition(n_rows: int, num_clients: int, seed: int) -> list[Index]:
    """Shuffle and cut into ``num_clients`` near-equal parts."""
    perm = np.random.default_rng(seed).permutation(n_rows).astype(np.int64)
    return [np.sort(p) for p in np.array_split(perm, num_clients)]


def dirichlet_partition(
    labels: npt.NDArray[np.int64], num_clients: int, alpha: float, seed: int, min_size: int = 10
) -> list[Index]:
    """Label-skewed split: for each class, client shares ~ Dirichlet(alpha); small alpha = more skew.

    Raises:
        ValueError: no split with ``min_size`` rows per client after 100 draws.
    """
    if alpha <= 0:
        raise ValueError(f"--alpha must be > 0 (or 0 for IID), got {alpha}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(100):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].append(chunk)
        out = [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
        if min(len(p) for p in out) >= min_size:
            return out
    raise ValueError(
        f"Dirichlet(alpha={alpha}) gave a client fewer than {min_size} rows in 100 draws; "
        "use a larger --alpha, fewer --clients or more data"
    )


def make_partitions(
    labels: npt.NDArray[np.int64], num_clients: int, alpha: float = 0.0, seed: int = 0, val_frac: float = 0.1
) -> Partitions:
    """Partition rows with ``labels`` among clients (``alpha=0``: IID); each keeps ``val_frac`` as validation.

    Raises:
        ValueError: fewer rows than clients, or an impossible Dirichlet split.
    """
    if num_clients < 1:
        raise ValueError(f"--clients must be >= 1, got {num_clients}")
    if len(labels) < 2 * num_clients:
        raise ValueError(f"{len(labels)} rows cannot be split among {num_clients} clients")
    parts = (
        iid_partition(len(labels), num_clients, seed)
        if alpha == 0
        else dirichlet_partition(labels, num_clients, alpha, seed)
    )
    rng = np.random.default_rng(seed + 1)
    train, val = [], []
    for p in parts:
        perm = rng.permutation(p)
        n_val = max(1, int(round(val_frac * len(p))))
        val.append(np.sort(perm[:n_val]))
        train.append(np.sort(perm[n_val:]))
    return Partitions(tuple(train), tuple(val), float(alpha), int(seed))
