"""Fitting from Python: the program loads what Python saved and scores alike; arrays fit as their
files do; evaluate() is `patchvec eval --json`."""

import numpy as np
import pytest
from PIL import Image

import patchvec
from conftest import CATEGORY, DATA, WEIGHTS, run_json, fixture_images


@pytest.fixture(scope="module")
def trained():
    dataset = patchvec.Dataset.mvtec(DATA, CATEGORY)
    return patchvec.train(dataset, backbone="resnet18", weights=str(WEIGHTS))


def test_a_model_saved_from_python_loads_in_the_program(trained, tmp_path):
    model = trained.model
    assert model.category == CATEGORY and model.info["bank_size"] == 470  # int(6 * 784 * 0.1)
    summary = trained.summary
    assert summary["category"] == CATEGORY
    assert summary["fit"]["bank_size"] == 470
    assert summary["thresholds"]["method"] == "false_alarm_rate"
    assert trained.evaluation["image_auroc"] == 1.0  # the blobs are obvious
    path = tmp_path / "synthetic.pvm"
    model.save(path)
    cli = run_json("predict", "--model", path, "--json", *fixture_images())
    assert [p["score"] for p in cli["predictions"]] == [p.score for p in model.predict(fixture_images())]
    assert patchvec.Model.load(path).info == model.info


def test_fit_from_arrays_is_fit_from_their_files():
    train = patchvec.Dataset.mvtec(DATA, CATEGORY).train
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in train]
    options = dict(backbone="resnet18", weights=str(WEIGHTS))
    from_files = patchvec.Model.fit(train, category="files", **options)
    from_arrays = patchvec.Model.fit(arrays, category="arrays", **options)
    assert from_arrays.category == "arrays"
    assert from_arrays.info["thresholds"] == from_files.info["thresholds"]
    assert ([p.score for p in from_arrays.predict(fixture_images())] ==
            [p.score for p in from_files.predict(fixture_images())])


def test_evaluate_is_the_programs_eval_json(trained, tmp_path):
    path = tmp_path / "synthetic.pvm"
    trained.model.save(path)
    cli = run_json("eval", "--model", path, "--data", DATA, "--json", "-")
    report = patchvec.evaluate(trained.model, patchvec.Dataset.mvtec(DATA, CATEGORY))
    for key in ("image_auroc", "pixel_auroc", "pro", "image_threshold", "pixel_threshold"):
        assert report[key] == cli[key], key
    assert report["images"] == cli["images"]


def test_bad_options_are_one_clear_error():
    dataset = patchvec.Dataset.mvtec(DATA, CATEGORY)
    with pytest.raises(patchvec.Error, match="threshold"):
        patchvec.train(dataset, backbone="resnet18", weights=str(WEIGHTS), threshold="far:2")
    with pytest.raises(patchvec.Error, match="backbone"):
        patchvec.train(dataset, backbone="vgg16")
    with pytest.raises(patchvec.Error, match="synthetic/nothing|nothing"):
        patchvec.Dataset.mvtec(DATA, "nothing")
