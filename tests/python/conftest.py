"""Shared set-up of the Python module's tests: the fixtures CTest generated, the patchvec
program, and a model trained once per session by that program (the PatchCore fixture category,
resnet18 with seeded weights)."""

import json
import os
import pathlib
import subprocess

import pytest

FIXTURES = pathlib.Path(os.environ["PATCHVEC_FIXTURE_DIR"])
BINARY = os.environ["PATCHVEC_BINARY"]
SOURCE = pathlib.Path(os.environ["PATCHVEC_SOURCE_DIR"])
DATA = FIXTURES / "patchcore" / "data"
WEIGHTS = FIXTURES / "patchcore" / "resnet18.safetensors"
CATEGORY = "synthetic"


def run(*args, check=True):
    """Runs the patchvec program; its stdout."""
    done = subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"patchvec {' '.join(map(str, args))}: {done.stderr}")
    return done


def run_json(*args):
    return json.loads(run(*args).stdout)


def fixture_images():
    """The fixture's test images in a fixed order: good ones, then defective ones."""
    return [str(DATA / CATEGORY / "test" / kind / f"00{i}.png")
            for kind in ("good", "blob") for i in range(3)]


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    run("train", "--data", DATA, "--category", CATEGORY, "--backbone", "resnet18",
        "--weights", WEIGHTS, "--out", out, "--quiet")
    return out / f"{CATEGORY}.pvm"


@pytest.fixture(scope="session")
def model(model_path):
    import patchvec
    return patchvec.Model.load(model_path)
