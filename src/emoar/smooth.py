"""Per-track smoothing of expression probabilities, with a flicker-free displayed label.

Each track id (from :class:`emoar.track.IouTracker`) keeps its own running estimate:

- ``"ema"``: exponential moving average. With timestamps it is time-aware: the weight of a new
  observation is ``1 - 0.5 ** (dt_ms / half_life_ms)``, so the result depends on elapsed time,
  not on the frame rate. Without timestamps a fixed ``alpha`` per update is used.
- ``"window"``: mean of the last ``window`` observations of the track.

The displayed label has hysteresis: it only switches when the new top class beats the current
label's probability by ``hysteresis`` (absolute probability), so two near-equal classes do not
make the overlay flicker.

Example:
    >>> smoother = ProbabilitySmoother(SmootherOptions(half_life_ms=150))
    >>> smoothed = smoother.update(track_ids, probs, timestamp_ms=t)  # (N, C), rows sum to 1
    >>> label_index = smoother.last_labels  # (N,) indices into the model's labels

Call :meth:`ProbabilitySmoother.update` once per processed frame, also when no face was found,
so that state of vanished tracks is dropped after ``max_age`` updates.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["ProbabilitySmoother", "SmootherOptions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmootherOptions:
    """Options for :class:`ProbabilitySmoother`, validated at creation.

    Attributes:
        mode: ``"ema"`` (exponential moving average) or ``"window"`` (mean of the last
            ``window`` observations).
        alpha: EMA weight (0-1] of the newest observation per update, used when no timestamps
            are given. 1 = no smoothing.
        half_life_ms: EMA half-life in milliseconds, used when timestamps are given: after
            ``half_life_ms`` an old estimate has half its weight. The default matches
            ``alpha=0.3`` at 15 fps.
        window: number of most recent observations averaged in ``"window"`` mode.
        max_age: a track's state is dropped after this many consecutive ``update()`` calls
            in which it did not appear.
        hysteresis: margin (absolute probability, 0-1) by which a new top class must beat the
            currently displayed class before the displayed label switches. 0 = plain argmax.
    """

    mode: Literal["ema", "window"] = "ema"
    alpha: float = 0.3
    half_life_ms: float = 130.0
    window: int = 5
    max_age: int = 30
    hysteresis: float = 0.1

    def __post_init__(self) -> None:
        if self.mode not in ("ema", "window"):
            raise ValueError(f"Unknown smoothing mode {self.mode!r}; available: 'ema', 'window'")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not self.half_life_ms > 0:
            raise ValueError(f"half_life_ms must be > 0 ms, got {self.half_life_ms}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1 observation, got {self.window}")
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0 updates, got {self.max_age}")
        if not 0.0 <= self.hysteresis < 1.0:
            raise ValueError(f"hysteresis must be in [0, 1), got {self.hysteresis}")


@dataclass
class _TrackState:
    mean: npt.NDArray[np.float64]  # current smoothed probabilities (C,)
    label: int  # displayed class index
    last_update: int  # update counter when last seen
    last_ms: float | None = None
    history: deque[npt.NDArray[np.float64]] = field(default_factory=deque)


def _normalize_rows(probs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    probs = np.clip(probs, 0.0, None)
    sums = probs.sum(axis=1, keepdims=True)
    uniform = np.full_like(probs, 1.0 / max(probs.shape[1], 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sums > 0, probs / sums, uniform)


class ProbabilitySmoother:
    """Smooths class probabilities per track id across the frames of one stream.

    Rows whose track id is negative (:data:`emoar.track.UNTRACKED`) pass through unsmoothed
    (only renormalised) and keep no state. Stateful: one instance per stream or web session.
    """

    def __init__(self, options: SmootherOptions | None = None) -> None:
        """Create a smoother.

        Args:
            options: smoother options; defaults to ``SmootherOptions()``.
        """
        self.options = options or SmootherOptions()
        self._state: dict[int, _TrackState] = {}
        self._updates = 0
        self._num_classes: int | None = None
        self._last_labels = np.zeros(0, dtype=np.int64)

    @property
    def track_ids(self) -> list[int]:
        """Ids of the tracks that currently have state."""
        return list(self._state)

    @property
    def last_labels(self) -> npt.NDArray[np.int64]:
        """(N,) displayed class indices for the rows of the last :meth:`update` call.

        After hysteresis for tracked rows; the plain argmax for untracked rows.
        """
        return self._last_labels.copy()

    def label_for(self, track_id: int) -> int | None:
        """Displayed class index of a track (after hysteresis), or None if it has no state."""
        state = self._state.get(int(track_id))
        return None if state is None else state.label

    def reset(self) -> None:
        """Forget all tracks (start of a new stream)."""
        self._state.clear()
        self._updates = 0
        self._num_classes = None
        self._last_labels = np.zeros(0, dtype=np.int64)

    def update(
        self,
        track_ids: npt.ArrayLike,
        probs: npt.ArrayLike,
        timestamp_ms: float | None = None,
    ) -> npt.NDArray[np.float64]:
        """Add one frame's observations and return the smoothed probabilities.

        Args:
            track_ids: (N,) integer track ids, aligned with the rows of ``probs``; negative ids
                are not smoothed.
            probs: (N, C) class probabilities (rows are renormalised to sum to 1).
            timestamp_ms: time of the frame in milliseconds since the start of the stream;
                enables the time-aware EMA (``half_life_ms``). ``None`` uses ``alpha``.

        Returns:
            (N, C) float64 smoothed probabilities, rows summing to 1, aligned with the input.
            The displayed labels are in :attr:`last_labels`.

        Raises:
            ValueError: on mismatched shapes, a repeated track id within one call, or a class
                count that differs from earlier calls.
        """
        opts = self.options
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        p = np.asarray(probs, dtype=np.float64)
        if p.size == 0 and ids.size == 0:
            p = p.reshape(0, self._num_classes or (p.shape[-1] if p.ndim == 2 else 0))
        if p.ndim != 2 or p.shape[0] != ids.shape[0]:
            raise ValueError(f"probs must have shape (N, C) with N={ids.shape[0]} track ids, got {p.shape}")
        if not np.all(np.isfinite(p)):
            raise ValueError("probs contains NaN or infinite values")
        tracked = ids[ids >= 0]
        if np.unique(tracked).size != tracked.size:
            raise ValueError(f"track ids must be unique within one update, got {ids.tolist()}")
        if ids.size:
            if self._num_classes is not None and p.shape[1] != self._num_classes:
                raise ValueError(
                    f"got {p.shape[1]} classes but earlier updates had {self._num_classes}; "
                    "call reset() when the model changes"
                )
            self._num_classes = p.shape[1]
        self._updates += 1
        p = _normalize_rows(p)
        out = p.copy()
        labels = np.argmax(p, axis=1).astype(np.int64) if p.shape[1] else np.zeros(len(ids), np.int64)

        for row, tid in enumerate(ids.tolist()):
            if tid < 0:
                continue
            obs = p[row]
            state = self._state.get(tid)
            if state is None:
                state = _TrackState(mean=obs.copy(), label=int(np.argmax(obs)), last_update=self._updates)
                state.history.append(obs)
            elif opts.mode == "window":
                state.history.append(obs)
                while len(state.history) > opts.window:
                    state.history.popleft()
                state.mean = np.mean(np.stack(state.history), axis=0)
            else:
                weight = self._ema_weight(state, timestamp_ms)
                state.mean = (1.0 - weight) * state.mean + weight * obs
            state.mean = state.mean / state.mean.sum()
            state.last_update = self._updates
            if timestamp_ms is not None:
                state.last_ms = float(timestamp_ms)
            state.label = self._hysteresis(state.label, state.mean)
            self._state[tid] = state
            out[row] = state.mean
            labels[row] = state.label

        stale = [tid for tid, s in self._state.items() if self._updates - s.last_update > opts.max_age]
        for tid in stale:
            del self._state[tid]
        self._last_labels = labels
        return out

    def _ema_weight(self, state: _TrackState, timestamp_ms: float | None) -> float:
        """Weight of the newest observation: time-aware when both timestamps are known."""
        if timestamp_ms is None or state.last_ms is None:
            return self.options.alpha
        dt = float(timestamp_ms) - state.last_ms
        if dt <= 0:
            # Repeated or out-of-order timestamps (e.g. a new stream without reset()): fall back
            # to the per-update weight rather than ignoring or over-weighting the frame.
            logger.debug("non-increasing timestamp (dt=%.1f ms); using alpha", dt)
            return self.options.alpha
        return float(1.0 - 0.5 ** (dt / self.options.half_life_ms))

    def _hysteresis(self, current: int, mean: npt.NDArray[np.float64]) -> int:
        top = int(np.argmax(mean))
        if top != current and mean[top] - mean[current] > self.options.hysteresis:
            return top
        return current
