#!/usr/bin/env python3
"""The PyTorch reference for `patchvec embed`: the same job done the way anomalib does it.

Decode with PIL, anomalib 2.x's transforms (Resize 256 antialias, CenterCrop 224, Normalize),
torchvision's wide_resnet50_2 up to layer3 in eval mode under torch.inference_mode(), PatchCore's
3x3 average pooling + bilinear resize + concat, and an N x H x W x C float32 .npy.

    reference_embed.py IMAGE_DIR WEIGHTS.safetensors OUT.npy [--threads N] [--channels-last]

Prints one JSON line: {"images", "total_s", "forward_s", "ms_per_image"}.
"""
import argparse
import importlib
import json
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
    tensors = [torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0)
               .permute(2, 0, 1) for p in paths]
    out = []
    for t in tensors:
        t = F.interpolate(t.unsqueeze(0), size=(256, 256), mode="bilinear", align_corners=False,
                          antialias=True)
        out.append(torchvision.transforms.functional.center_crop(t, [224, 224]))
    return (torch.cat(out) - MEAN) / STD


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("images")
    parser.add_argument("weights")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    model = torchvision.models.wide_resnet50_2()
    state = load_safetensors(args.weights)
    model.load_state_dict(state, strict=False)
    model.eval()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    paths = sorted(os.path.join(args.images, f) for f in os.listdir(args.images) if f.endswith(".png"))
    pool = torch.nn.AvgPool2d(3, 1, 1)
    outputs, forward_s = [], 0.0
    with torch.inference_mode():
        for i in range(0, len(paths), args.batch_size):
            batch = load_batch(paths[i:i + args.batch_size])
            if args.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            t = time.perf_counter()
            x = model.maxpool(model.relu(model.bn1(model.conv1(batch))))
            layer2 = model.layer2(model.layer1(x))
            layer3 = model.layer3(layer2)
            forward_s += time.perf_counter() - t
            near, far = pool(layer2), pool(layer3)
            far = F.interpolate(far, size=near.shape[-2:], mode="bilinear", align_corners=False)
            outputs.append(torch.cat([near, far], 1).permute(0, 2, 3, 1).contiguous().numpy())
    np.save(args.out, np.concatenate(outputs))
    total = time.perf_counter() - start
    print(json.dumps({"images": len(paths), "total_s": round(total, 2), "forward_s": round(forward_s, 2),
                      "ms_per_image": round(1000 * total / len(paths), 1)}))


if __name__ == "__main__":
    main()
