#!/usr/bin/env python3
"""PatchCore in PyTorch, the way anomalib 2.x runs it, for `bench/patchcore_vs_pytorch.sh`.

    reference_patchcore.py train DATA CATEGORY WEIGHTS [--coreset-ratio 0.1] [--form anomalib|best]
    reference_patchcore.py predict DATA CATEGORY WEIGHTS BANK.pt [--batch-size 8]

train: PIL decoding, anomalib's transforms, torchvision wide_resnet50_2 in eval mode under
inference_mode, PatchCore embeddings, then anomalib's KCenterGreedy: a sparse random projection to
the Johnson-Lindenstrauss dimension (eps 0.9) and the greedy loop, in anomalib's
F.pairwise_distance form (--form anomalib) or the fastest PyTorch form, |z|^2 - 2 z.c (--form best).
Saves the bank next to nothing else: BANK.pt = DATA/CATEGORY.bank.pt.
predict: the test images, batched; nearest neighbours with anomalib's euclidean_dist, the
re-weighted image score (9 neighbours), the anomaly map (upsample + Gaussian blur).
Prints one JSON line of timings.
"""
import argparse
import importlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
load_safetensors = importlib.import_module("export-weights").load_safetensors

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_batch(paths):
    out = []
    for p in paths:
        t = torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0).permute(2, 0, 1)
        t = F.interpolate(t[None], size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
        out.append(torchvision.transforms.functional.center_crop(t, [224, 224]))
    return (torch.cat(out) - MEAN) / STD


def model_from(weights):
    model = torchvision.models.wide_resnet50_2()
    model.load_state_dict(load_safetensors(weights), strict=False)
    return model.eval()


def embed(model, batch):
    x = model.maxpool(model.relu(model.bn1(model.conv1(batch))))
    layer2 = model.layer2(model.layer1(x))
    layer3 = model.layer3(layer2)
    pool = torch.nn.AvgPool2d(3, 1, 1)
    near, far = pool(layer2), pool(layer3)
    far = F.interpolate(far, size=near.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([near, far], 1)


def images(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png"))


def sparse_projection(n_samples, n_features, generator):
    """anomalib's SparseRandomProjection(eps=0.9), density 1/sqrt(n_features)."""
    eps = 0.9
    k = int(4 * math.log(n_samples) / (eps ** 2 / 2 - eps ** 3 / 3))
    density = 1 / math.sqrt(n_features)
    signs = torch.where(torch.rand(k, n_features, generator=generator) < 0.5, -1.0, 1.0)
    keep = torch.rand(k, n_features, generator=generator) < density
    return signs * keep * math.sqrt(1 / density) / math.sqrt(k)


def k_center_greedy(embedding, ratio, form):
    generator = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    features = embedding @ sparse_projection(*embedding.shape, generator).T
    project_s = time.perf_counter() - t
    n = features.shape[0]
    size = int(n * ratio)
    t = time.perf_counter()
    index = int(torch.randint(n, (1,), generator=generator))
    chosen, min_distances = [index], None
    norms = features.pow(2).sum(1) if form == "best" else None
    for _ in range(size - 1):
        if form == "anomalib":
            distance = F.pairwise_distance(features, features[index:index + 1], p=2).reshape(-1, 1)
        else:
            distance = (norms - 2 * features @ features[index] + norms[index]).reshape(-1, 1)
        min_distances = distance if min_distances is None else torch.minimum(min_distances, distance)
        index = int(torch.argmax(min_distances))
        min_distances[index] = 0
        chosen.append(index)
    coreset_s = time.perf_counter() - t
    return chosen, features.shape[1], project_s, coreset_s


def train(args):
    start = time.perf_counter()
    model = model_from(args.weights)
    paths = images(os.path.join(args.data, args.category, "train", "good"))
    parts = []
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(paths), args.batch_size):
            e = embed(model, load_batch(paths[i:i + args.batch_size]))
            parts.append(e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]))
    embedding = torch.cat(parts)
    embed_s = time.perf_counter() - t
    with torch.inference_mode():
        chosen, dim, project_s, coreset_s = k_center_greedy(embedding, args.coreset_ratio, args.form)
        bank = embedding[chosen].clone()
    torch.save({"bank": bank}, args.bank)
    total = time.perf_counter() - start
    print(json.dumps({"images": len(paths), "patches": embedding.shape[0], "bank": len(chosen),
                      "projection_dim": dim, "form": args.form, "embed_s": round(embed_s, 2),
                      "project_s": round(project_s, 2), "coreset_s": round(coreset_s, 2),
                      "coreset_ms_per_step": round(1000 * coreset_s / max(len(chosen) - 1, 1), 2),
                      "total_s": round(total, 2)}))


def euclidean_dist(x, y):  # anomalib
    x_norm = x.pow(2).sum(dim=-1, keepdim=True)
    y_norm = y.pow(2).sum(dim=-1, keepdim=True)
    res = x_norm - 2 * torch.matmul(x, y.transpose(-2, -1)) + y_norm.transpose(-2, -1)
    return res.clamp_min_(0).sqrt_()


def predict(args):
    model = model_from(args.weights)
    bank = torch.load(args.bank)["bank"]
    paths = []
    test = os.path.join(args.data, args.category, "test")
    for defect in sorted(os.listdir(test)):
        paths += images(os.path.join(test, defect))
    k = 2 * int(4.0 * 4 + 0.5) + 1
    g = torch.exp(-(torch.arange(k) - k // 2).double() ** 2 / 32)
    kernel = torch.outer(g / g.sum(), g / g.sum()).float()[None, None]
    read_s = backbone_s = search_s = map_s = 0.0
    with torch.inference_mode():
        for i in range(0, len(paths), args.batch_size):
            t0 = time.perf_counter()
            batch = load_batch(paths[i:i + args.batch_size])
            t1 = time.perf_counter()
            e = embed(model, batch)
            t2 = time.perf_counter()
            b, c, h, w = e.shape
            flat = e.permute(0, 2, 3, 1).reshape(-1, c)
            patch_scores, locations = euclidean_dist(flat, bank).min(1)
            patch_scores, locations = patch_scores.reshape(b, -1), locations.reshape(b, -1)
            worst = patch_scores.argmax(1)
            features = flat.reshape(b, h * w, -1)[torch.arange(b), worst]
            s_star = patch_scores[torch.arange(b), worst]
            nn_sample = bank[locations[torch.arange(b), worst]]
            _, support = euclidean_dist(nn_sample, bank).topk(9, largest=False, dim=1)
            d = euclidean_dist(features.unsqueeze(1), bank[support])
            scores = (1 - F.softmax(d.squeeze(1), 1))[..., 0] * s_star
            t3 = time.perf_counter()
            maps = F.interpolate(patch_scores.reshape(b, 1, h, w), size=(224, 224), mode="bilinear")
            maps = F.conv2d(F.pad(maps, (k // 2,) * 4, mode="reflect"), kernel)
            t4 = time.perf_counter()
            read_s += t1 - t0
            backbone_s += t2 - t1
            search_s += t3 - t2
            map_s += t4 - t3
    n = len(paths)
    total = read_s + backbone_s + search_s + map_s
    print(json.dumps({"images": n, "bank": bank.shape[0], "ms_per_image": {
        "read": round(1000 * read_s / n, 1), "backbone": round(1000 * backbone_s / n, 1),
        "search": round(1000 * search_s / n, 1), "map": round(1000 * map_s / n, 1),
        "total": round(1000 * total / n, 1)}}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["train", "predict"])
    parser.add_argument("data")
    parser.add_argument("category")
    parser.add_argument("weights")
    parser.add_argument("bank")
    parser.add_argument("--coreset-ratio", type=float, default=0.1)
    parser.add_argument("--form", choices=["anomalib", "best"], default="anomalib")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train(args) if args.mode == "train" else predict(args)


if __name__ == "__main__":
    main()
