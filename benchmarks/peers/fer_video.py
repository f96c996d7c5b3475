"""`fer`'s full pipeline on a video, for benchmarks/video_e2e.py (run in benchmarks/.venv-fer).

Usage: python fer_video.py CLIP OUT.mp4 [--mtcnn]

Reads the clip with OpenCV, runs ``FER(mtcnn=...).detect_emotions`` on every frame, draws each
face's box and top emotion (as fer's own ``Video`` annotation does) and writes the video with
OpenCV. Prints one JSON line on stderr: frames and faces found.
"""

from __future__ import annotations

import json
import sys

import cv2
from fer.fer import FER  # 25.10 no longer re-exports it from the package


def _numpy_nms_if_needed() -> None:
    """facenet-pytorch's MTCNN imports two things from torchvision (``ops.boxes.batched_nms`` and
    ``transforms.functional``), and the registry's torchvision wheel does not import with the
    CPU build of torch (its compiled ops are missing). When that import fails, provide those two
    names: facenet-pytorch's own numpy NMS (``batched_nms_numpy``, "Union", the same rule) and a
    ``to_tensor``. The detector's networks and weights are facenet-pytorch's, unchanged."""
    import types

    import numpy as np
    import torch

    try:
        import torchvision  # noqa: F401

        return
    except RuntimeError:
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]

    def batched_nms(boxes, scores, idxs, threshold):  # type: ignore[no-untyped-def]
        from facenet_pytorch.models.utils.detect_face import batched_nms_numpy

        return torch.as_tensor(
            np.asarray(batched_nms_numpy(boxes, scores, idxs, threshold, "Union")), dtype=torch.long
        )

    def to_tensor(a):  # type: ignore[no-untyped-def]
        return torch.as_tensor(np.ascontiguousarray(np.asarray(a).transpose(2, 0, 1)))

    mods = {
        n: types.ModuleType(n)
        for n in (
            "torchvision",
            "torchvision.ops",
            "torchvision.ops.boxes",
            "torchvision.transforms",
            "torchvision.transforms.functional",
        )
    }
    mods["torchvision.ops.boxes"].batched_nms = batched_nms  # type: ignore[attr-defined]
    mods["torchvision.ops"].boxes = mods["torchvision.ops.boxes"]  # type: ignore[attr-defined]
    mods["torchvision.transforms.functional"].to_tensor = to_tensor  # type: ignore[attr-defined]
    mods["torchvision.transforms"].functional = mods["torchvision.transforms.functional"]  # type: ignore[attr-defined]
    sys.modules.update(mods)


def main() -> None:
    clip, out = sys.argv[1], sys.argv[2]
    if "--mtcnn" in sys.argv:
        _numpy_nms_if_needed()
    detector = FER(mtcnn="--mtcnn" in sys.argv)
    cap = cv2.VideoCapture(clip)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    frames = faces = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for face in detector.detect_emotions(frame):
            x, y, w_, h_ = face["box"]
            label = max(face["emotions"], key=face["emotions"].get)
            cv2.rectangle(frame, (x, y), (x + w_, y + h_), (0, 155, 255), 2)
            cv2.putText(
                frame, label, (x, y - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 155, 255), 1, cv2.LINE_AA
            )
            faces += 1
        writer.write(frame)
        frames += 1
    if writer is not None:
        writer.release()
    print(json.dumps({"frames": frames, "faces": faces}), file=sys.stderr)


if __name__ == "__main__":
    main()
