"""How trained classifiers read synthetic faces from ``emoar gan synth``.

Each classifier's predicted-class shares on the synthetic faces, next to its shares on the real
PublicTest faces of the classes the synthetic ones were made from (the base rate). A classifier
that served as the generator's judge (``emoar gan train --classifier``) is marked: it is the
one the generator was trained to convince, so only the others say whether the edits carry
over beyond that one network.

Usage:
    python benchmarks/stargan.py --synth runs/synth_disgust.npz --gan runs/stargan/last.pt \\
        --checkpoint shipped=checkpoints/emoar-resnet-fer.pt \\
        --checkpoint fmix_c2=checkpoints/members/resnet_fer_fmix_s13_c2.pt
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FER_CSV, machine, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synth", required=True, help=".npz from emoar gan synth")
    ap.add_argument("--gan", default="", help="the GAN checkpoint (to mark its judge and print its settings)")
    ap.add_argument("--checkpoint", action="append", required=True, help="NAME=PATH (repeat)")
    a = ap.parse_args()
    import torch

    from emoar.train.data import load_extra_faces, load_fer2013_csv
    from emoar.train.loop import load_checkpoint
    from emoar.train.predict import predict_logits

    torch.set_num_threads(1)
    judge, gan_info = "", ""
    if a.gan:
        st = torch.load(a.gan, map_location="cpu", weights_only=False)
        c = st["config"]
        judge = os.path.abspath(c["classifier"]) if c.get("classifier") else ""
        gan_info = (
            f"{st['step']} steps of batch {c['batch_size']}, width {c['width']}, {c['res_blocks']} res blocks, "
            f"judge {c.get('classifier') or 'the discriminator'}"
        )
    public = load_fer2013_csv(FER_CSV)["PublicTest"]
    synth = load_extra_faces(a.synth, tuple(public.label_names))
    target = int(np.bincount(synth.labels).argmax())
    sources = public.labels != target
    rows = []
    for spec in a.checkpoint:
        name, _, path = spec.rpartition("=")
        name = name or os.path.basename(path)
        net, meta = load_checkpoint(path)
        labels = list(meta["labels"])
        tag = " (the judge)" if judge and os.path.abspath(path) == judge else ""
        for what, images in (
            ("synthetic", synth.images),
            ("real PublicTest, other classes", public.images[sources]),
        ):
            lg = np.asarray(predict_logits(net.float(), images, meta["mean"], meta["std"]))
            share = np.bincount(lg.argmax(1), minlength=len(labels)) / len(images)
            rows.append([f"{name}{tag}", f"{what} ({len(images)})", *[f"{s:.3f}" for s in share]])
    print(f"# How classifiers read {len(synth)} synthetic '{public.label_names[target]}' faces ({a.synth})")
    print(
        f"# command: python benchmarks/stargan.py --synth {a.synth}"
        + (f" --gan {a.gan}" if a.gan else "")
        + "".join(f" --checkpoint {c}" for c in a.checkpoint)
    )
    if gan_info:
        print(f"# GAN: {gan_info}")
    print(f"# machine: {machine()}\n")
    print(table(["classifier", "faces", *public.label_names], rows))


if __name__ == "__main__":
    main()
