"""Regenerate tests/golden/<model>.json for the shipped default model after shipping a new one.

Usage: python scripts/make_golden.py   (reads ../shared/data/photos and the bundled sample)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from emoar.io import read_image
from emoar.models import default_model_name, list_models
from emoar.pipeline import Pipeline, PipelineOptions
from emoar.samples import sample_image

REPO = Path(__file__).resolve().parents[1]
PHOTOS = Path(os.environ.get("EMOAR_SHARED_DATA", REPO.parent / "shared" / "data")) / "photos"


def main() -> None:
    frames = {"astronaut (bundled)": sample_image()}
    frames |= {p.name: read_image(p) for p in sorted(PHOTOS.glob("portrait*.jpg"))}
    model = next(m for m in list_models() if m.name == default_model_name())
    out = {"model": model.name, "sha256": model.sha256, "images": {}}
    with Pipeline.from_options(PipelineOptions.create(model=model.name)) as pipe:
        for name, frame in frames.items():
            out["images"][name] = [f.to_dict() for f in pipe.process(frame).faces]
    path = REPO / "tests" / "golden" / f"{model.name}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
