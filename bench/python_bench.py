#!/usr/bin/env python3
"""The Python module's side of bench/python.sh.

    python_bench.py call MODEL IMAGE [--repeat 30]     median ms of one predict() call
    python_bench.py fit DATA CATEGORY WEIGHTS          100-image fit + predict of the test split

Prints one JSON line.
"""
import argparse
import json
import statistics
import time

import numpy as np
from PIL import Image

import patchvec


def median_ms(repeat, call):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def call(args):
    patchvec.set_quiet(True)
    model = patchvec.Model.load(args.model)
    array = np.asarray(Image.open(args.image).convert("RGB"))
    model.predict(args.image)  # warm up
    print(json.dumps({
        "file_ms": median_ms(args.repeat, lambda: model.predict(args.image)),
        "array_ms": median_ms(args.repeat, lambda: model.predict(array)),
        "blas": patchvec._patchvec.blas_core(),
    }))


def fit(args):
    patchvec.set_quiet(True)
    dataset = patchvec.Dataset.mvtec(args.data, args.category)
    start = time.perf_counter()
    result = patchvec.train(dataset, weights=args.weights, evaluate=False)
    fit_s = time.perf_counter() - start
    model = result.model
    timings = result.summary["fit"]["timings"]
    images = [t["image"] for t in dataset.test]
    start = time.perf_counter()
    model.predict(images)
    predict_s = time.perf_counter() - start
    print(json.dumps({"fit_s": fit_s, "embed_s": timings["embed_s"],
                      "coreset_s": timings["coreset_s"], "calibrate_s": timings["calibrate_s"],
                      "predict_s": predict_s, "images": len(images),
                      "ms_per_image": 1000 * predict_s / len(images)}))


parser = argparse.ArgumentParser()
commands = parser.add_subparsers(dest="command", required=True)
c = commands.add_parser("call")
c.add_argument("model")
c.add_argument("image")
c.add_argument("--repeat", type=int, default=30)
f = commands.add_parser("fit")
f.add_argument("data")
f.add_argument("category")
f.add_argument("weights")
args = parser.parse_args()
{"call": call, "fit": fit}[args.command](args)
