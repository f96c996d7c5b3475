"""Response schemas, for the OpenAPI docs at the edge only.

The bodies themselves are built by :meth:`emoar.types.FrameResult.to_dict` (the ``analyze``
JSON of docs/contracts.md); these models describe that shape for ``/docs`` and are checked against it
in the tests, so the two cannot drift silently.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "AnalyzeOut",
    "ErrorOut",
    "FaceOut",
    "HealthOut",
    "ModelOut",
    "ModelsOut",
    "VideoFrameOut",
    "VideoOut",
]


class FaceOut(BaseModel):
    """One face (``faces[]`` of the analyze JSON)."""

    box_xyxy: list[float] = Field(description="x1, y1, x2, y2 in pixels of the original image")
    score: float = Field(description="detector confidence in [0, 1]")
    expression: str = Field(description="top label")
    probs: dict[str, float] = Field(description="label -> probability, sums to 1")
    ood_score: float = Field(description="out-of-distribution score in [0, 1]")
    uncertain: bool = Field(description="true when ood_score is above the model's threshold")
    track_id: int | None = Field(description="stable id in streams; null for single images")


class AnalyzeOut(BaseModel):
    """``POST /v1/analyze``: the ``emoar analyze --json`` object."""

    image: str | None = Field(description="the uploaded file name")
    width: int = Field(description="image width in pixels")
    height: int = Field(description="image height in pixels")
    faces: list[FaceOut]
    annotated_png_base64: str | None = Field(
        default=None, description="only with ?annotate=true: the image with overlays, PNG, base64"
    )


class VideoFrameOut(BaseModel):
    """One analysed frame of a clip (a line of ``emoar video --json``)."""

    frame: int = Field(description="frame index in the clip")
    timestamp_ms: float = Field(description="milliseconds from the start of the clip")
    width: int
    height: int
    faces: list[FaceOut]


class TrackOut(BaseModel):
    """One track of a clip (:class:`emoar.summary.TrackSummary`)."""

    track_id: int | None
    frames: int = Field(description="analysed frames in which the track was seen")
    first_ms: float
    last_ms: float
    dominant: str = Field(description="the expression with the highest mean probability")
    mean_probs: dict[str, float]
    shares: dict[str, float] = Field(description="fraction of the track's frames with each top expression")
    uncertain_frames: int


class VideoOut(BaseModel):
    """``POST /v1/analyze/video`` (JSON format)."""

    video: str | None = Field(description="the uploaded file name")
    model: str
    fps: float = Field(description="frame rate of the clip, frames per second")
    frames: list[VideoFrameOut]
    tracks: list[TrackOut] = Field(description="one summary per track id, in order of first appearance")
    annotated_webm_base64: str | None = Field(
        None, description="with annotate=true: the analysed frames with the overlays, VP8 WebM, base64"
    )


class ModelOut(BaseModel):
    """One servable model, with what a browser needs to run it on-device."""

    name: str
    default: bool
    shipped: bool
    description: str
    metrics: dict[str, Any]
    sha256: str | None
    size_bytes: int | None
    labels: list[str]
    input_size: list[int] = Field(description="height, width of the classifier input in pixels")
    mean: float = Field(description="input = (gray / 255 - mean) / std")
    std: float
    ood_output: str = Field(
        default="rmd", description="the model output the OOD quantiles describe ('ood'; 'rmd' in older files)"
    )
    ood_quantiles: list[float] = Field(
        description="101 quantiles of the ood_output on real faces; ood_score = interp(value, quantiles, 0..1)"
    )
    ood_threshold: float
    temperature: float = Field(
        default=1.0, description="calibration temperature: probs = softmax(log(model probs) / temperature)"
    )
    onnx_url: str


class ModelsOut(BaseModel):
    """``GET /v1/models``."""

    default: str
    models: list[ModelOut]
    detector: str = Field(description="server-side face detector")
    alignment: dict[str, Any] = Field(
        description="FER crop template the classifier expects (see emoar.align)"
    )


class HealthOut(BaseModel):
    """``GET /healthz``."""

    status: str


class ErrorOut(BaseModel):
    """Every error response."""

    error: str = Field(description="short machine-readable code")
    message: str = Field(description="what went wrong and what to do next")
    status: int = Field(description="the HTTP status code")
