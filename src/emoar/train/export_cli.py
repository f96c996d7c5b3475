"""``emoar export``: checkpoint -> ONNX (fp32 or int8) or TF Lite, with metadata and OOD statistics.

int8 (``--format onnx --int8``) is onnxruntime's post-training *static* quantization in QDQ
format: int8 weights (symmetric, per output channel) and uint8 activations (per tensor, MinMax
ranges calibrated on real training faces). Everything after the convolutional backbone stays
float32: the pooling that produces the penultimate features, the classifier, the softmax and
the OOD head (Mahalanobis distances on the features): distances are sums of squares whose
range int8 would crush, and ``probs`` keeps full resolution; these ops cost next to nothing.
onnxruntime fuses the Q/DQ pairs into integer kernels (QLinearConv, QLinearAdd, ...) at load.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emoar.cliargs import comma_list
from emoar.train.data import load_dataset
from emoar.train.negatives import low_resolution_faces, non_face_patches
from emoar.train.quantize import ood_head_nodes, quantize_int8

if TYPE_CHECKING:
    from emoar.train.export import Deployable

__all__ = [
    "CALIBRATION_SIZE",
    "ExportInputs",
    "load_export_inputs",
    "ood_head_nodes",
    "quantize_int8",
    "run_export",
]

logger = logging.getLogger(__name__)

#: Training faces used to calibrate int8 activation ranges.
CALIBRATION_SIZE = 1024
#: Training faces the OOD Gaussians and the face / non-face discriminator are fitted on.
OOD_FIT_SIZE = 20000
#: Non-face patches per generated source (see :mod:`emoar.train.negatives`).
NEGATIVES_PER_SOURCE = 600
#: Low-resolution copies of training faces on the discriminator's face side.
LOW_RES_FACES = 3000


@dataclass(frozen=True)
class ExportInputs:
    """The real faces an export is fitted and calibrated on (all uint8 (N, H, W)).

    Attributes:
        train_images: training faces the OOD Gaussians are fitted on.
        train_labels: their labels.
        ood_calib_images: held-out faces (PublicTest) that calibrate the OOD score.
        quant_calib_images: training faces that calibrate int8 activation ranges.
        negatives: non-face patches by source for the face / non-face discriminator
            (:func:`emoar.train.negatives.non_face_patches`).
        extra_faces: low-resolution training faces for the discriminator's face side.
        data: the dataset the faces came from (for the temperature fit after export).
        task: its label set (``fer2013`` or ``ferplus``).
        calibration_limit: faces of PublicTest the temperature is fitted on (0: all).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    ood_calib_images: np.ndarray
    quant_calib_images: np.ndarray
    negatives: dict[str, np.ndarray]
    extra_faces: np.ndarray
    data: str = ""
    task: str = "fer2013"
    calibration_limit: int = 0

    def prepare(
        self, checkpoint: str | os.PathLike[str] | list[str], *, name: str | None = None, flip: bool = False
    ) -> Deployable:
        """:func:`emoar.train.export.prepare_export` of ``checkpoint`` (a list: an ensemble)
        fitted on these faces; ``flip`` builds flip test-time augmentation into the graph."""
        from emoar.train.export import prepare_export

        return prepare_export(
            checkpoint,
            train_images=self.train_images,
            train_labels=self.train_labels,
            calib_images=self.ood_calib_images,
            name=name,
            negatives=self.negatives,
            extra_faces=self.extra_faces,
            flip=flip,
        )


def load_export_inputs(checkpoint: str | os.PathLike[str], data: str | None = None) -> ExportInputs:
    """Pick the faces an export of ``checkpoint`` uses (deterministic: the same every call).

    Args:
        checkpoint: ``best.pt``/``last.pt`` written by ``emoar train``.
        data: training data (default: the data recorded in the checkpoint); a checkpoint
            trained with ``--limit`` is fitted on the same slice.

    Raises:
        ValueError: unreadable checkpoint or data.
    """
    from emoar.train.loop import read_checkpoint

    ck = read_checkpoint(checkpoint)
    data = data or ck.get("config", {}).get("data")
    if not data:
        raise ValueError("--data is required: the checkpoint does not record its training data")
    task = str(ck.get("config", {}).get("task") or "fer2013")
    splits = load_dataset(data, task)
    tr = splits["Training"]
    va = splits.get("PublicTest", tr)
    limit = int(ck.get("config", {}).get("limit") or 0)
    if limit:  # fit on the same slice the model was trained on
        tr = tr.subset(np.arange(min(limit, len(tr))))
        va = va.subset(np.arange(min(max(limit // 4, 64), len(va))))
    # FER+ raters call some FER2013 images "not a face": they are negatives, not faces
    tr_nf = tr.nf >= 0.5 if tr.nf is not None else np.zeros(len(tr), bool)
    va_face = va.nf < 0.5 if va.nf is not None else np.ones(len(va), bool)
    nf_images = tr.images[tr_nf]
    if task != "fer2013":  # the FER+ task drops those rows: take them from the FER2013 split
        base = load_dataset(data)["Training"]
        base = base.subset(np.arange(min(limit, len(base)))) if limit else base
        nf_images = base.images[base.nf >= 0.5] if base.nf is not None else base.images[:0]
    faces = np.flatnonzero(~tr_nf)
    rng = np.random.default_rng(0)
    fit_idx = np.sort(rng.permutation(faces)[:OOD_FIT_SIZE])
    calib_idx = np.sort(rng.permutation(fit_idx)[:CALIBRATION_SIZE])
    neg_rng = np.random.default_rng(1)
    negatives = non_face_patches(tr.images[faces], nf_images, neg_rng, n_per_source=NEGATIVES_PER_SOURCE)
    extra_faces = low_resolution_faces(tr.images[fit_idx], LOW_RES_FACES, neg_rng)
    return ExportInputs(
        train_images=tr.images[fit_idx],
        train_labels=tr.labels[fit_idx],
        ood_calib_images=va.images[va_face],
        quant_calib_images=tr.images[calib_idx],
        negatives=negatives,
        extra_faces=extra_faces,
        data=str(data) if "PublicTest" in splits else "",
        task=task,
        calibration_limit=len(va) if limit else 0,
    )


def _calibrate(path: Path, inputs: ExportInputs) -> Path:
    """Fit the exported model's temperature on PublicTest (in place); skipped without that split."""
    if not inputs.data:
        logger.warning("%s: no PublicTest split to fit a temperature on; left uncalibrated", path)
        return path
    from emoar.train.calibrate import calibrate_model

    r = calibrate_model(
        str(path),
        inputs.data,
        split="PublicTest",
        report_split=None,
        out=str(path),
        task=inputs.task,
        limit=inputs.calibration_limit,
    )
    logger.info(
        "%s: temperature %.3f (PublicTest ECE %.4f -> %.4f)", path, r.temperature, r.ece_before, r.ece_after
    )
    return path


def run_export(
    checkpoint: str,
    *,
    fmt: str = "onnx",
    out: str | None = None,
    int8: bool = False,
    data: str | None = None,
    name: str | None = None,
    weights: str = "fp32",
    calibrate: bool = True,
    flip: bool = False,
) -> Path:
    """Export a checkpoint; returns the written file.

    Args:
        checkpoint: ``best.pt``/``last.pt`` written by ``emoar train``; several, comma-separated,
            export an ensemble (one graph averaging their probabilities; the OOD statistics,
            training data and calibration faces are the first one's).
        fmt: ``onnx`` or ``tflite``.
        out: output file (default: the checkpoint's path with ``.onnx``, ``.int8.onnx`` or
            ``.tflite``).
        int8: static int8 quantization (ONNX only).
        calibrate: fit the ONNX file's temperature on PublicTest (:mod:`emoar.train.calibrate`).
        data: training data to fit the OOD statistics on and calibrate with (default: the
            data recorded in the checkpoint).
        name: model name stored in the file (default: ``out``'s stem).
        weights: ONNX float weight storage, ``fp32`` or ``fp16`` (half the file; computed in
            float32). Not with ``int8`` or TF Lite.
        flip: build flip test-time augmentation into the graph (ONNX only): ``probs`` is the
            average over each face and its mirror image, at about twice the time per face, and
            the file says so (``emoar.builtin_tta``) so the runtime does not mirror again.

    Raises:
        ValueError: unknown format, unsupported combination, missing converter, unreadable
            checkpoint or data.
    """
    from emoar.train.export import save_onnx, save_tflite

    if fmt not in ("onnx", "tflite"):
        raise ValueError(f"Unknown format {fmt!r}; choose onnx or tflite")
    if fmt == "tflite" and int8:
        raise ValueError(
            "--int8 is available with --format onnx; the TF Lite export is float32 "
            "(LiteRT runs it with XNNPack on phones)"
        )
    if weights not in ("fp32", "fp16"):
        raise ValueError(f"Unknown weight storage {weights!r}; choose fp32 or fp16")
    if weights == "fp16" and (int8 or fmt != "onnx"):
        raise ValueError("--weights fp16 applies to the float ONNX export (not --int8 or tflite)")
    if flip and fmt != "onnx":
        raise ValueError("--flip applies to the ONNX export (float or --int8), not TF Lite")
    if fmt == "tflite" and importlib.util.find_spec("litert_torch") is None:
        raise ValueError(
            "TF Lite export needs the LiteRT converter (litert-torch), which is not installed: "
            "pip install 'emoar[tflite]'"
        )
    paths = comma_list(checkpoint)
    if not paths:
        raise ValueError("no checkpoint given")
    inputs = load_export_inputs(paths[0], data)
    suffix = {"onnx": ".int8.onnx" if int8 else ".onnx", "tflite": ".tflite"}[fmt]
    outp = Path(out) if out else Path(paths[0]).with_suffix(suffix)
    dep = inputs.prepare(paths, name=name or outp.stem, flip=flip)  # one path: a plain model
    if fmt == "tflite":
        return save_tflite(dep, outp)
    if not int8:
        written = save_onnx(dep, outp, weights=weights)
        return _calibrate(Path(written), inputs) if calibrate else written
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = save_onnx(dep, Path(tmp) / "fp32.onnx")
        written = quantize_int8(
            fp32,
            outp,
            inputs.quant_calib_images,
            dep.mean,
            dep.std,
            ood_calib_images=inputs.ood_calib_images,
        )
    return _calibrate(Path(written), inputs) if calibrate else written
