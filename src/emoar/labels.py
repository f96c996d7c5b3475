"""Expression label sets and name normalisation.

The label order is a contract between training and serving; it travels inside every model
file (ONNX ``metadata_props``), so this module only provides the canonical FER2013 order and
the name variants that dataset folders use.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Expression", "FER2013_LABELS", "FERPLUS_LABELS", "canonical_label"]


class Expression(StrEnum):
    """Every expression a shipped model outputs (value = the label string used in JSON): the
    seven FER2013 classes, and ``contempt``, which the 8-class FER+ model adds."""

    ANGRY = "angry"
    DISGUST = "disgust"
    FEAR = "fear"
    HAPPY = "happy"
    SAD = "sad"
    SURPRISE = "surprise"
    NEUTRAL = "neutral"
    CONTEMPT = "contempt"


#: FER2013 label order: index i in the Kaggle CSV ``emotion`` column is ``FER2013_LABELS[i]``.
FER2013_LABELS: tuple[str, ...] = tuple(e.value for e in Expression if e is not Expression.CONTEMPT)

#: FER+ 8-class task label order (FER2013 order plus ``contempt``).
FERPLUS_LABELS: tuple[str, ...] = FER2013_LABELS + ("contempt",)

_VARIANTS = {
    "angry": "angry",
    "anger": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "contempt": "contempt",
}


def canonical_label(name: str) -> str | None:
    """Map a class-folder or column name to its canonical label.

    Args:
        name: a name such as ``"Anger"``, ``"happiness"`` or ``"surprised"``.

    Returns:
        The canonical label (``"angry"``, ``"happy"``, ...) or ``None`` when unknown.
    """
    return _VARIANTS.get(name.strip().lower())
