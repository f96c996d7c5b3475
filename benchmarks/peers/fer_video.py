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
from fer import FER


def main() -> None:
    clip, out = sys.argv[1], sys.argv[2]
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
