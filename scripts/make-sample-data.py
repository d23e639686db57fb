#!/usr/bin/env python3
"""A small sample category in MVTec AD layout, for `make demo` until `patchvec synth` exists.

    make-sample-data.py ROOT [--train 16] [--size 512] [--seed 0]

Writes ROOT/sample/train/good/NNN.png: a grainy surface with soft blotches and varying light.
"""
import argparse
import os

import numpy as np
from PIL import Image


def surface(rng, size):
    y, x = np.mgrid[0:size, 0:size] / size
    grain = rng.normal(0, 1, (size // 4, size // 4))
    grain = np.kron(grain, np.ones((4, 4)))[:size, :size]
    light = 0.55 + 0.15 * (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1))
    blotches = sum(0.08 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / rng.uniform(0.002, 0.02))
                   for cx, cy in rng.uniform(0, 1, (6, 2)))
    base = np.clip(light + 0.05 * grain + blotches, 0, 1)
    tint = np.array([1.0, 0.93, 0.82]) * rng.uniform(0.95, 1.05)
    return (np.clip(base[..., None] * tint, 0, 1) * 255).astype(np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root")
    parser.add_argument("--train", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    folder = os.path.join(args.root, "sample", "train", "good")
    os.makedirs(folder, exist_ok=True)
    for i in range(args.train):
        Image.fromarray(surface(rng, args.size)).save(os.path.join(folder, f"{i:03d}.png"))


if __name__ == "__main__":
    main()
