"""Export a checkpoint to ONNX or TF Lite (LiteRT) with everything the runtime needs inside the file.

The exported graph has one input ``input`` (N, 1, H, W) float32, already normalised by
:func:`emoar.preprocess.preprocess`, and three outputs:

* ``probs`` (N, C): softmax probabilities in the label order stored in the metadata;
* ``rmd`` (N,): relative Mahalanobis distance (Ren et al. 2021) of the penultimate features:
  ``min_k d_k(f) - d_0(f)`` where ``d_k`` uses the class means and a shared covariance and
  ``d_0`` a background Gaussian fitted on all training features;
* ``ood`` (N,): the out-of-distribution logit the runtime scores: a logistic "not a face"
  discriminator on ``[features, rmd]`` fitted on training faces against non-face patches
  (outlier exposure, :mod:`emoar.train.negatives`); it equals ``rmd`` for a model exported
  without negatives;
* ``features`` (N, D): the penultimate features (for analysis / re-fitting).

The metadata (a flat ``str -> str`` map, keys ``emoar.*``) carry the label order, input size,
normalisation, the architecture, the training data, measured metrics and the OOD calibration
(quantiles of ``ood`` on held-out real faces, so the runtime can turn a distance into a score
in [0, 1]) and threshold. Where they live:

* ONNX: ``metadata_props`` (read back by :class:`emoar.classify.ExpressionClassifier`);
* TF Lite: the flatbuffer's ``metadata`` table, entry ``"emoar"``, holding the same map as
  UTF-8 JSON (:func:`read_tflite_metadata`), plus a copy next to the model,
  ``<file>.tflite.json``, for mobile apps that read JSON from their assets more easily than
  flatbuffer metadata. The embedded copy is authoritative; both are written together.

The TF Lite file is converted straight from PyTorch by ``litert-torch`` (install the
``emoar[tflite]`` extra); it runs on ``ai-edge-litert`` (``emoar[litert]``) or any LiteRT /
TF Lite runtime on Android and iOS. Its input is NCHW ``(1, 1, H, W)``, which for a single
gray channel is the same memory layout as NHWC ``(1, H, W, 1)``.

This module gathers the export API; each step lives in its own module:
:mod:`emoar.train.ood` (fitting the OOD head), :mod:`emoar.train.deploy` (checkpoint ->
:class:`Deployable`), :mod:`emoar.train.onnx_export` (ONNX, fp16 weight storage),
:mod:`emoar.train.quantize` (int8), :mod:`emoar.train.tflite` (TF Lite) and
:mod:`emoar.train.export_cli` (the ``emoar export`` command).
"""

from __future__ import annotations

from emoar.modelmeta import FORMAT_VERSION
from emoar.train.deploy import OUTPUT_NAMES, Deployable, prepare_export
from emoar.train.onnx_export import FP16_MIN_ELEMENTS, save_onnx, store_weights_fp16
from emoar.train.ood import DEFAULT_OOD_THRESHOLD, NonFaceHead, OodStats, fit_nonface, fit_ood, ood_quantiles
from emoar.train.tflite import TFLITE_METADATA_NAME, read_tflite_metadata, save_tflite, write_tflite_metadata

__all__ = [
    "DEFAULT_OOD_THRESHOLD",
    "FORMAT_VERSION",
    "FP16_MIN_ELEMENTS",
    "OUTPUT_NAMES",
    "TFLITE_METADATA_NAME",
    "Deployable",
    "NonFaceHead",
    "OodStats",
    "fit_nonface",
    "fit_ood",
    "ood_quantiles",
    "prepare_export",
    "read_tflite_metadata",
    "save_onnx",
    "save_tflite",
    "store_weights_fp16",
    "write_tflite_metadata",
]
