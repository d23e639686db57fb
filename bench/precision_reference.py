#!/usr/bin/env python3
"""PyTorch's side of bench/precision.sh: the backbone up to layer3 plus PatchCore's patch features
(3x3 average pooling, layer3 resized to layer2's grid, concatenated), the way anomalib runs it
(eager, torch.inference_mode()), in float32 and under torch.autocast("cpu", dtype=torch.bfloat16).

    precision_reference.py [--threads N] [--seconds S]

Prints one JSON object: {"<backbone>/<mode>/<batch>": ms per image, ...}, for wide_resnet50_2 and
resnet18, modes fp32 and autocast_bf16, batches 1 and 8. Random weights and inputs: speed does not
depend on the values.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
import torchvision


def features(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    layer2 = model.layer2(model.layer1(x))
    layer3 = model.layer3(layer2)
    pooled2 = F.avg_pool2d(layer2, 3, 1, 1)
    pooled3 = F.interpolate(F.avg_pool2d(layer3, 3, 1, 1), size=pooled2.shape[-2:],
                            mode="bilinear", align_corners=False)
    return torch.cat([pooled2, pooled3.float()], 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {}
    for name in ("wide_resnet50_2", "resnet18"):
        model = getattr(torchvision.models, name)().eval()
        for mode in ("fp32", "autocast_bf16"):
            for batch in (1, 8):
                x = torch.randn(batch, 3, 224, 224)
                with torch.inference_mode(), torch.autocast(
                        "cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
                    features(model, x)  # warm-up: oneDNN builds its kernels
                    runs, start = 0, time.perf_counter()
                    while time.perf_counter() - start < args.seconds or runs < 2:
                        features(model, x)
                        runs += 1
                    elapsed = time.perf_counter() - start
                out[f"{name}/{mode}/{batch}"] = 1000 * elapsed / runs / batch
    print(json.dumps(out))


if __name__ == "__main__":
    main()
