#!/usr/bin/env python3
"""Export torchvision ResNet weights as .safetensors for `patchvec --weights`.

PatchVec reads torchvision's .pth files itself (`--weights imagenet`, a URL or the file); this
script is for converting to safetensors, or for the seeded random weights the benchmarks use.
On a machine with torchvision and internet access:

    python3 scripts/export-weights.py wide_resnet50_2 wide_resnet50_2.safetensors
    python3 scripts/export-weights.py resnet18 resnet18.safetensors --dtype f16

or convert a state dict you already have (a torch.save()'d .pth):

    python3 scripts/export-weights.py wide_resnet50_2 out.safetensors --from-pth wide_resnet50_2-95faca4d.pth

`--random-seed S` writes torchvision's seeded random initialisation instead (no download; the
benchmarks use it), and `--calibrate-on FOLDER` re-estimates its BatchNorm statistics on the
images in FOLDER first (anomalib's preprocessing, torch.optim.swa_utils.update_bn), which is what
`patchvec train` does by itself when it has no weights.

The writer below is plain Python (no `safetensors` package needed) and is also what the test
suite uses to produce its fixtures.
"""
import argparse
import json
import os
import struct
import sys
import tempfile

import torch

DTYPES = {  # name -> (torch dtype, safetensors name)
    "f32": (torch.float32, "F32"),
    "f16": (torch.float16, "F16"),
    "bf16": (torch.bfloat16, "BF16"),
}
INTEGER_NAMES = {torch.int64: "I64", torch.int32: "I32"}


def tensor_bytes(tensor):
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.view(torch.int16)  # numpy has no bfloat16
    return tensor.numpy().tobytes()


def load_safetensors(path):
    """{name: tensor} from a safetensors file with F32/F16/BF16/I64 tensors."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    types = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
    state = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.uint8)
        state[name] = raw.view(types[entry["dtype"]]).reshape(entry["shape"]).clone()
    return state


def save_safetensors(state, path, dtype="f32"):
    """Writes {name: tensor} as safetensors; float tensors are stored as `dtype`, atomically."""
    float_type, float_name = DTYPES[dtype]
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        tensor = state[name]
        if tensor.is_floating_point():
            tensor, type_name = tensor.to(float_type), float_name
        else:
            type_name = INTEGER_NAMES[tensor.dtype]
        blob = tensor_bytes(tensor)
        header[name] = {"dtype": type_name, "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(dir=folder, delete=False) as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)
    os.chmod(out.name, 0o644)
    os.replace(out.name, path)


def calibrate(model, folder, batch_size=8):
    """BatchNorm statistics re-estimated on the images in `folder`, as patchvec does."""
    import numpy as np
    import torch.nn.functional as F
    from PIL import Image
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                   if f.lower().endswith((".png", ".jpg", ".jpeg")))
    batches = []
    for i in range(0, len(paths), batch_size):
        images = []
        for p in paths[i:i + batch_size]:
            x = torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0)
            x = F.interpolate(x.permute(2, 0, 1)[None], size=(256, 256), mode="bilinear",
                              align_corners=False, antialias=True)
            images.append(x[..., 16:240, 16:240])
        batches.append((torch.cat(images) - mean) / std)
    torch.optim.swa_utils.update_bn(batches, model)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbone", choices=["wide_resnet50_2", "resnet50", "resnet18"])
    parser.add_argument("out", help="output .safetensors file")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    parser.add_argument("--from-pth", help="a saved state dict instead of torchvision's download")
    parser.add_argument("--random-seed", type=int, help="seeded random weights instead (no download)")
    parser.add_argument("--calibrate-on", help="folder of images for BatchNorm re-estimation")
    args = parser.parse_args()

    import torchvision
    if args.random_seed is not None:
        torch.manual_seed(args.random_seed)
        model = getattr(torchvision.models, args.backbone)()
        if args.calibrate_on:
            calibrate(model, args.calibrate_on)
        state = model.state_dict()
    elif args.from_pth:
        state = torch.load(args.from_pth, map_location="cpu")
        state = state.get("state_dict", state)
    else:
        model = getattr(torchvision.models, args.backbone)(weights="IMAGENET1K_V1")
        state = model.state_dict()
    save_safetensors(state, args.out, args.dtype)
    print(f"wrote {len(state)} tensors to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
