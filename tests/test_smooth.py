"""ProbabilitySmoother: convergence, damping, frame-rate independence, hysteresis, state."""

from __future__ import annotations

import numpy as np
import pytest

from emoar.labels import FER2013_LABELS
from emoar.smooth import ProbabilitySmoother, SmootherOptions

C = len(FER2013_LABELS)
HAPPY, SURPRISE, NEUTRAL = (FER2013_LABELS.index(n) for n in ("happy", "surprise", "neutral"))


def dist(top: int, p: float) -> np.ndarray:
    """A probability row with ``p`` on class ``top`` and the rest spread evenly."""
    row = np.full(C, (1.0 - p) / (C - 1))
    row[top] = p
    return row


def tie(first: int, second: int, p_first: float, p_second: float) -> np.ndarray:
    row = np.full(C, (1.0 - p_first - p_second) / (C - 2))
    row[first], row[second] = p_first, p_second
    return row


@pytest.mark.parametrize("mode", ["ema", "window"])
def test_steady_input_converges(mode: str) -> None:
    smoother = ProbabilitySmoother(SmootherOptions(mode=mode))  # type: ignore[arg-type]
    smoother.update([1], dist(NEUTRAL, 0.9)[None])
    target = dist(HAPPY, 0.7)
    for _ in range(40):
        out = smoother.update([1], target[None])
    np.testing.assert_allclose(out[0], target, atol=1e-4)
    assert smoother.label_for(1) == HAPPY


@pytest.mark.parametrize("mode", ["ema", "window"])
def test_single_frame_spike_is_damped(mode: str) -> None:
    smoother = ProbabilitySmoother(SmootherOptions(mode=mode))  # type: ignore[arg-type]
    steady = dist(HAPPY, 0.8)
    for _ in range(10):
        smoother.update([7], steady[None])
    spike = smoother.update([7], dist(SURPRISE, 0.9)[None])[0]
    assert spike[SURPRISE] < 0.35 and spike[HAPPY] > 0.5
    assert smoother.last_labels.tolist() == [HAPPY]
    for _ in range(10):
        after = smoother.update([7], steady[None])[0]
    assert after[HAPPY] > 0.75


def _step_response(fps: float, half_life_ms: float = 200.0) -> dict[int, np.ndarray]:
    """Neutral at t=0, then happy for one second sampled at ``fps``; output keyed by ms."""
    smoother = ProbabilitySmoother(SmootherOptions(half_life_ms=half_life_ms))
    smoother.update([1], dist(NEUTRAL, 0.9)[None], timestamp_ms=0.0)
    out = {}
    for k in range(1, int(fps) + 1):
        t = k * 1000.0 / fps
        out[round(t)] = smoother.update([1], dist(HAPPY, 0.9)[None], timestamp_ms=t)[0]
    return out


def test_time_aware_ema_does_not_depend_on_fps() -> None:
    at15, at30 = _step_response(15.0), _step_response(30.0)
    for t in (200, 400, 600, 800, 1000):  # instants present in both streams
        np.testing.assert_allclose(at15[t], at30[t], atol=1e-6)
    # half of the remaining gap is closed per half-life (200 ms): 1/32 left after 1 s
    gap0 = 0.9 - dist(NEUTRAL, 0.9)[HAPPY]
    np.testing.assert_allclose((0.9 - at15[1000][HAPPY]) / gap0, 0.5**5, rtol=1e-6)


def test_per_update_alpha_depends_on_fps() -> None:
    """Why timestamps matter: without them the same second of video smooths differently."""

    # Per-update alpha (no timestamps) does depend on the frame count.
    def final_without_timestamps(n_frames: int) -> float:
        smoother = ProbabilitySmoother(SmootherOptions(alpha=0.1))
        smoother.update([3], dist(NEUTRAL, 0.9)[None])
        for _ in range(n_frames):
            out = smoother.update([3], dist(HAPPY, 0.9)[None])
        return float(out[0, HAPPY])

    assert final_without_timestamps(30) - final_without_timestamps(15) > 0.1


def test_hysteresis_prevents_flicker_on_alternating_near_ties() -> None:
    a = tie(HAPPY, NEUTRAL, 0.46, 0.42)
    b = tie(HAPPY, NEUTRAL, 0.42, 0.46)
    raw = ProbabilitySmoother(SmootherOptions(alpha=1.0, hysteresis=0.0))  # no smoothing at all
    stable = ProbabilitySmoother(SmootherOptions(alpha=1.0, hysteresis=0.1))
    raw_labels, stable_labels = [], []
    for k in range(20):
        row = (a if k % 2 == 0 else b)[None]
        raw.update([1], row)
        stable.update([1], row)
        raw_labels.append(raw.label_for(1))
        stable_labels.append(stable.last_labels[0])
    assert len(set(raw_labels)) == 2  # flickers every frame
    assert set(stable_labels) == {HAPPY}
    default = ProbabilitySmoother()  # EMA + hysteresis, with timestamps at 30 fps
    labels = set()
    for k in range(60):
        default.update([1], (b if k % 2 == 0 else a)[None], timestamp_ms=k * 33.3)
        labels.add(default.label_for(1))
    assert labels == {NEUTRAL}
    # a clear winner still switches the label
    stable.update([1], tie(HAPPY, NEUTRAL, 0.2, 0.7)[None])
    assert stable.label_for(1) == NEUTRAL


def test_rows_sum_to_one_and_untracked_rows_pass_through() -> None:
    smoother = ProbabilitySmoother()
    rng = np.random.default_rng(1)
    for _ in range(5):
        raw = rng.random((3, C)) * 5  # not normalised
        out = smoother.update([4, -1, 9], raw)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(out[1], raw[1] / raw[1].sum())
    assert sorted(smoother.track_ids) == [4, 9]
    assert smoother.label_for(-1) is None
    zero = smoother.update([5], np.zeros((1, C)))
    np.testing.assert_allclose(zero[0], 1.0 / C)


def test_window_mode_is_mean_of_last_k() -> None:
    smoother = ProbabilitySmoother(SmootherOptions(mode="window", window=3))
    rows = [dist(i, 0.7) for i in range(5)]
    for row in rows:
        out = smoother.update([2], row[None])
    np.testing.assert_allclose(out[0], np.mean(rows[-3:], axis=0))


def test_state_is_dropped_after_max_age_and_reset() -> None:
    smoother = ProbabilitySmoother(SmootherOptions(max_age=2))
    smoother.update([1, 2], np.stack([dist(HAPPY, 0.9), dist(SURPRISE, 0.9)]))
    smoother.update([2], dist(SURPRISE, 0.9)[None])
    smoother.update(np.zeros(0, int), np.zeros((0, C)))
    assert sorted(smoother.track_ids) == [1, 2]  # 1 missed 2 updates: kept
    smoother.update([], [])
    assert smoother.track_ids == [2]
    # a track that comes back after its state was dropped starts fresh
    out = smoother.update([1], dist(NEUTRAL, 0.9)[None])
    np.testing.assert_allclose(out[0], dist(NEUTRAL, 0.9))
    smoother.reset()
    assert smoother.track_ids == [] and smoother.last_labels.shape == (0,)


def test_empty_update_returns_empty() -> None:
    smoother = ProbabilitySmoother()
    out = smoother.update([], np.zeros((0, C)))
    assert out.shape == (0, C)
    assert smoother.last_labels.shape == (0,)


@pytest.mark.parametrize(
    ("ids", "probs"),
    [([1, 2], np.ones((1, C))), ([1, 1], np.ones((2, C))), ([1], np.full((1, C), np.nan))],
)
def test_bad_input_raises(ids: list[int], probs: np.ndarray) -> None:
    with pytest.raises(ValueError):
        ProbabilitySmoother().update(ids, probs)


def test_class_count_change_raises() -> None:
    smoother = ProbabilitySmoother()
    smoother.update([1], np.ones((1, C)))
    with pytest.raises(ValueError, match="reset"):
        smoother.update([1], np.ones((1, C + 1)))


@pytest.mark.parametrize(
    "kwargs", [{"mode": "median"}, {"alpha": 0.0}, {"half_life_ms": 0}, {"window": 0}, {"hysteresis": 1.0}]
)
def test_options_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SmootherOptions(**kwargs)  # type: ignore[arg-type]
