"""PatchVec from Python: PatchCore anomaly detection on a CPU, numpy in and out.

The same engine as the ``patchvec`` program (a C++ library; no PyTorch at run time)::

    import patchvec
    dataset = patchvec.Dataset.mvtec("datasets/mvtec", "bottle")
    model = patchvec.Model.fit(dataset, weights="imagenet")
    model.save("models/bottle.pvm")
    p = model.predict("new.png")          # or a uint8 numpy array, H x W x 3, RGB
    print(p.score, p.verdict, p.map.shape)

Long calls (fit, predict, evaluate, searches) release the GIL, so Python threads overlap, and
stop at the next batch on Ctrl-C (KeyboardInterrupt). Messages go to the ``patchvec`` logger
(``logging.getLogger("patchvec")``): silence them with ``patchvec.set_quiet(True)`` or the
logger's level. docs/python.md has the whole tour.
"""

import atexit as _atexit
import logging as _logging

from . import _patchvec
from ._patchvec import (
    ConflictError,
    Dataset,
    Error,
    ImageError,
    Inspector,
    Model,
    ModelFileError,
    NotFoundError,
    Prediction,
    Store,
    TrainResult,
    UnavailableError,
    WeightsUnavailable,
    evaluate,
    get_threads,
    import_anomalib,
    open_store,
    set_threads,
    train,
)
from . import pictures, weights

__version__ = _patchvec.version()
__all__ = [
    "ConflictError", "Dataset", "Error", "ImageError", "Inspector", "Model", "ModelFileError",
    "NotFoundError", "Prediction", "Store", "TrainResult", "UnavailableError",
    "WeightsUnavailable", "evaluate", "get_threads", "import_anomalib", "open_store",
    "pictures", "set_quiet", "set_threads", "train", "weights",
]

logger = _logging.getLogger("patchvec")


def _log(level, message):
    logger.log(level, message)


_patchvec._set_log_sink(_log)
# No message may reach Python once it is shutting down.
_atexit.register(_patchvec._set_log_sink, None)


def set_quiet(quiet=True):
    """Silences PatchVec's progress and information messages (warnings stay)."""
    _patchvec._set_quiet(bool(quiet))


def _fit(images, *, category="default", **options):
    """Fits a model on defect-free images and sets its thresholds: ``patchvec train``.

    images: a Dataset (its train split; its test split, if any, is evaluated), a path, a folder,
    a uint8 array, or a list of paths or of arrays (arrays are written once as PNG files to a
    temporary folder: fitting reads files). Options as :func:`patchvec.train`; returns the Model.
    """
    if isinstance(images, Dataset):
        category = images.name
    return train(images, category=category, **options).model


Model.fit = staticmethod(_fit)
