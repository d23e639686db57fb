"""import_anomalib() from Python scores the test checkpoints as anomalib did (the reference the
C++ test holds it to: 1e-4 relative)."""

import numpy as np
import pytest

import patchvec
from conftest import FIXTURES, fixture_images


@pytest.mark.parametrize("checkpoint", ["patchcore_v1.ckpt", "patchcore_v2.ckpt"])
def test_anomalib_checkpoints_score_as_anomalib(checkpoint):
    model = patchvec.import_anomalib(FIXTURES / "patchcore" / checkpoint, "synthetic")
    expected = np.load(FIXTURES / "patchcore" / "anomalib_scores.npy")
    scores = np.array([p.score for p in model.predict(fixture_images())])
    assert np.allclose(scores, expected, rtol=1e-4, atol=0)
    assert model.info["backbone"] == "resnet18"


def test_a_file_that_is_no_checkpoint_is_one_error(tmp_path):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a zip at all")
    with pytest.raises(patchvec.Error, match="bogus.ckpt"):
        patchvec.import_anomalib(bogus, "synthetic")
