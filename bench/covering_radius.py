#!/usr/bin/env python3
"""Covering radius of memory banks in the full embedding space: the largest distance from a
training patch to its nearest bank patch (smaller is better; greedy k-center minimises it).

    covering_radius.py EMBEDDINGS.npy MODEL.pvm REFERENCE_BANK.pt

EMBEDDINGS.npy is `patchvec embed` of the training images; MODEL.pvm a patchvec model (its bank
is read straight from the file's section table); REFERENCE_BANK.pt from reference_patchcore.py.
"""
import json
import struct
import sys

import numpy as np
import torch


def pvm_bank(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"PATCHVEC"
    (header_size,) = struct.unpack("<Q", data[16:24])
    section = json.loads(data[24:24 + header_size])["sections"]["bank"]
    start = section["offset"]
    bank = np.frombuffer(data[start:start + section["bytes"]], dtype=np.float32)
    return torch.from_numpy(bank.reshape(section["shape"]).copy())


def radius(patches, bank):
    worst = 0.0
    for chunk in torch.split(patches, 4096):
        worst = max(worst, float(torch.cdist(chunk, bank).amin(1).max()))
    return worst


def main():
    torch.set_num_threads(2)
    patches = torch.from_numpy(np.load(sys.argv[1]))
    patches = patches.reshape(-1, patches.shape[-1])
    ours, reference = radius(patches, pvm_bank(sys.argv[2])), radius(patches, torch.load(sys.argv[3])["bank"])
    print(json.dumps({"patchvec": round(ours, 4), "pytorch": round(reference, 4),
                      "ratio": round(ours / reference, 4)}))


if __name__ == "__main__":
    main()
