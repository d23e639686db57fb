"""Pictures for people: anomaly maps over images, as numpy RGB arrays (PIL-friendly)."""

from ._patchvec import _pictures


def overlay(image, prediction, model, *, height=360):
    """The prediction's anomaly map laid over the image it was made from (a path or a uint8
    array), ``height`` pixels high at the image's aspect; what the centre crop cut away is dimmed.

    Returns an H x W x 3 uint8 RGB array: ``PIL.Image.fromarray(overlay(...))`` shows it.
    """
    return _pictures.overlay(image, prediction, model, height)
