#!/usr/bin/env python3
"""A grainy-surface category in MVTec AD layout: the fixed input of the benchmarks in bench/
(their cached PyTorch reference results were computed on it). Demos use `patchvec synth`.

    make-sample-data.py ROOT [--train 16] [--test-good 6] [--test-bad 6] [--size 512] [--seed 0]

Writes ROOT/sample/{train/good, test/good, test/scratch, test/stain, ground_truth/...}: a grainy
surface with soft blotches and varying light; defects are dark scratches and coloured stains with
pixel-exact masks.
"""
import argparse
import os

import numpy as np
from PIL import Image, ImageDraw


def surface(rng, size):
    y, x = np.mgrid[0:size, 0:size] / size
    grain = rng.normal(0, 1, (size // 4, size // 4))
    grain = np.kron(grain, np.ones((4, 4)))[:size, :size]
    light = 0.55 + 0.15 * (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1))
    blotches = sum(0.08 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / rng.uniform(0.002, 0.02))
                   for cx, cy in rng.uniform(0, 1, (6, 2)))
    base = np.clip(light + 0.05 * grain + blotches, 0, 1)
    tint = np.array([1.0, 0.93, 0.82]) * rng.uniform(0.95, 1.05)
    return np.clip(base[..., None] * tint, 0, 1)


def scratch(rng, image, size):
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    x0, y0 = rng.uniform(0.2, 0.8, 2) * size
    angle, length = rng.uniform(0, np.pi), rng.uniform(0.15, 0.35) * size
    x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
    draw.line([(x0, y0), (x1, y1)], fill=255, width=int(rng.integers(3, 8)))
    m = np.asarray(mask) > 0
    image[m] *= rng.uniform(0.35, 0.6)
    return m


def stain(rng, image, size):
    y, x = np.mgrid[0:size, 0:size]
    cx, cy = rng.uniform(0.25, 0.75, 2) * size
    rx, ry = rng.uniform(0.04, 0.1, 2) * size
    m = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
    image[m] = 0.6 * image[m] + 0.4 * np.array([0.55, 0.25, 0.15])
    return m


def save(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root")
    parser.add_argument("--train", type=int, default=16)
    parser.add_argument("--test-good", type=int, default=6)
    parser.add_argument("--test-bad", type=int, default=6)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    root = os.path.join(args.root, "sample")
    for i in range(args.train):
        save(f"{root}/train/good/{i:03d}.png", surface(rng, args.size))
    for i in range(args.test_good):
        save(f"{root}/test/good/{i:03d}.png", surface(rng, args.size))
    for i in range(args.test_bad):
        kind, draw = [("scratch", scratch), ("stain", stain)][i % 2]
        image = surface(rng, args.size)
        mask = draw(rng, image, args.size)
        save(f"{root}/test/{kind}/{i // 2:03d}.png", image)
        save(f"{root}/ground_truth/{kind}/{i // 2:03d}_mask.png", np.repeat(mask[..., None], 3, 2) * 1.0)


if __name__ == "__main__":
    main()
