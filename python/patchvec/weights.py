"""Backbone weights: by file, URL or name ("imagenet"), downloaded only when asked and verified.

The cache is $XDG_CACHE_HOME/patchvec/weights (``~/.cache/patchvec/weights``);
PATCHVEC_OFFLINE=1 never downloads. As ``patchvec weights fetch|verify|list``.
"""

from ._patchvec import _weights


def fetch(what, backbone="wide_resnet50_2", *, download=True, cache_dir=None):
    """The local file for a weights name, URL or path (downloaded into the cache when missing).

    Raises patchvec.WeightsUnavailable when it cannot be brought onto this machine.
    """
    return _weights.fetch(what, backbone, download, cache_dir)


def verify(file, backbone=""):
    """How a weights file fits a backbone (or, with none given, the first that fits): a dict with
    format, tensors, sha256, backbone, prefix, problems and fits."""
    return _weights.verify(file, backbone)


def list(cache_dir=None):  # noqa: A001 - the CLI's name
    """The named weights PatchVec knows and the files in the cache: (named, cached) lists."""
    named, cached = _weights.list(cache_dir)
    return {"named": named, "cached": cached}


def cache_dir():
    """Where downloaded weights are kept."""
    return _weights.cache_dir()


def backbones():
    """The backbones PatchVec runs."""
    return _weights.backbones()
