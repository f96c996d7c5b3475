from __future__ import annotations

import numpy as np

from emoar.metrics import classification_report, confusion_matrix, expected_calibration_error


def test_confusion_and_report_hand_computed() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    probs = np.eye(3)[pred] * 0.9 + 0.1 / 3
    cm = confusion_matrix(y, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    rep = classification_report(y, probs, ("a", "b", "c"))
    assert rep["n"] == 6 and abs(rep["accuracy"] - 4 / 6) < 1e-9
    # class a: precision 1/2, recall 1/2; b: 2/3, 1; c: 1, 1/2
    f1 = [0.5, 2 * (2 / 3) / (2 / 3 + 1), 2 * 0.5 / 1.5]
    assert abs(rep["macro_f1"] - np.mean(f1)) < 1e-9
    assert rep["per_class"]["b"]["n"] == 2 and rep["labels"] == ["a", "b", "c"]


def test_ece_zero_for_calibrated_and_positive_for_overconfident() -> None:
    y = np.array([0, 1] * 50)
    confident_wrong = np.tile([[0.99, 0.01]], (100, 1))
    assert expected_calibration_error(y, confident_wrong) > 0.4
    perfect = np.eye(2)[y]
    assert expected_calibration_error(y, perfect) < 1e-9


def test_empty_inputs() -> None:
    rep = classification_report(np.zeros(0, int), np.zeros((0, 7)), tuple("abcdefg"))
    assert rep["n"] == 0 and rep["accuracy"] == 0.0
