"""Model.load / predict / embed against the patchvec program, bit for bit, and images given as
numpy arrays of every layout the module accepts."""

import pathlib

import numpy as np
import pytest
from PIL import Image

import patchvec
from conftest import CATEGORY, DATA, WEIGHTS, run, run_json, fixture_images


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_scores_and_maps_equal_the_programs(model, model_path, tmp_path):
    maps = tmp_path / "maps"
    cli = run_json("predict", "--model", model_path, "--json", "--maps", maps, *fixture_images())
    predictions = model.predict(fixture_images())
    assert len(predictions) == 6
    for expected, p in zip(cli["predictions"], predictions):
        assert p.image == expected["image"]
        assert p.score == expected["score"]
        assert p.normalized == expected["normalized"]
        assert p.verdict == expected["verdict"]
        assert np.array_equal(p.map, np.load(expected["map"]))
        assert np.array_equal(p.map_original, np.load(expected["map_original"]), equal_nan=True)
        assert p.map.dtype == np.float32 and p.map.shape == (224, 224)
        assert not p.map.flags.writeable
    assert [p.verdict for p in predictions] == ["normal"] * 3 + ["anomalous"] * 3


def test_one_image_gives_one_prediction_and_a_folder_a_list(model):
    one = model.predict(fixture_images()[3])
    assert isinstance(one, patchvec.Prediction)
    assert one.score == model.predict([fixture_images()[3]])[0].score
    folder = model.predict(DATA / CATEGORY / "test" / "blob")  # os.PathLike too
    assert [p.score for p in folder] == [p.score for p in model.predict(fixture_images()[3:])]


def test_arrays_of_every_layout_give_the_files_result(model, tmp_path):
    paths = fixture_images()
    expected = [p.score for p in model.predict(paths)]
    arrays = [rgb(p) for p in paths]
    assert [p.score for p in model.predict(arrays)] == expected

    image = arrays[4]
    h, w, _ = image.shape
    wide = np.zeros((h, 2 * w, 3), np.uint8)
    wide[:, ::2] = image
    padded = np.zeros((h, w, 4), np.uint8)
    padded[..., :3] = image
    layouts = {
        "strided view": wide[:, ::2],
        "negative strides": image[::-1, ::-1][::-1, ::-1],
        "Fortran order": np.asfortranarray(image),
        "channels view of RGBA": padded[..., :3],
        "RGBA": np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=2),
    }
    for name, array in layouts.items():
        assert model.predict(array).score == expected[4], name
    p = model.predict(image)
    assert np.array_equal(p.map, model.predict(paths[4]).map)

    grey = np.asarray(Image.open(paths[4]).convert("L"))
    grey_file = tmp_path / "grey.png"
    Image.fromarray(grey).save(grey_file)
    from_file = model.predict(grey_file).score
    assert model.predict(grey).score == from_file
    assert model.predict(grey[..., None]).score == from_file


def test_wrong_arrays_are_one_clear_error(model):
    with pytest.raises(TypeError, match="uint8"):
        model.predict(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="H x W x 1, 3"):
        model.predict(np.zeros((64, 64, 2), np.uint8))
    with pytest.raises(ValueError, match="got a scalar"):
        model.predict(np.array(3, np.uint8))
    with pytest.raises(TypeError, match="paths or arrays, not both"):
        model.predict([fixture_images()[0], rgb(fixture_images()[0])])
    with pytest.raises(TypeError, match="expected a path"):
        model.predict(42)
    # A view that costs nothing in numpy (zero strides) is held to the pixel limit before
    # anything is allocated: 10^10 pixels would be 120 GB of floats.
    huge = np.broadcast_to(np.zeros(3, np.uint8), (100_000, 100_000, 3))
    with pytest.raises(patchvec.ImageError, match="more than the limit") as error:
        model.predict(huge)
    assert error.value.kind == "too_large"


def test_unreadable_images(model, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(patchvec.ImageError) as error:
        model.predict(bad)
    assert error.value.kind == "damaged"
    assert str(bad) in str(error.value)
    with pytest.raises(patchvec.ImageError) as error:
        model.predict(tmp_path / "missing.png")
    assert error.value.kind == "unreadable"
    both = model.predict([bad, fixture_images()[0]])  # the others are still scored
    assert both[0].error is not None and np.isnan(both[0].score)
    assert both[1].error is None and both[1].score == model.predict(fixture_images()[0]).score


def test_model_files_round_trip_and_refuse_damage(model, model_path, tmp_path):
    copy = tmp_path / "copy.pvm"
    model.save(copy)
    again = patchvec.Model.load(copy)
    assert again.info == model.info
    assert again.info["category"] == CATEGORY and again.info["backbone"] == "resnet18"
    assert again.info["grid"] == (28, 28, 384)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.pvm"
    damaged.write_bytes(bytes(data))
    with pytest.raises(patchvec.ModelFileError, match="damaged.pvm"):
        patchvec.Model.load(damaged)
    with pytest.raises(patchvec.ModelFileError):
        patchvec.Model.load(tmp_path / "none.pvm")
    assert issubclass(patchvec.ModelFileError, patchvec.Error)


def test_embeddings_equal_the_programs_npy(model, tmp_path):
    out = tmp_path / "embeddings.npy"
    run("embed", "--data", DATA, "--category", CATEGORY, "--backbone", "resnet18",
        "--weights", WEIGHTS, "--out", out, "--quiet")
    train = patchvec.Dataset.mvtec(DATA, CATEGORY).train
    embeddings = model.embed(train)
    assert embeddings.dtype == np.float32 and embeddings.shape == (6, 28, 28, 384)
    assert np.array_equal(embeddings, np.load(out))
    assert np.array_equal(model.embed([rgb(p) for p in train]), embeddings)


def test_overlays_are_rgb_pictures_of_the_image(model):
    path = fixture_images()[4]
    p = model.predict(path)
    picture = patchvec.pictures.overlay(path, p, model)
    assert picture.dtype == np.uint8 and picture.shape == (360, 360, 3)
    assert np.array_equal(patchvec.pictures.overlay(rgb(path), p, model), picture)
    assert patchvec.pictures.overlay(path, p, model, height=100).shape == (100, 100, 3)
    with pytest.raises(patchvec.Error, match="height"):
        patchvec.pictures.overlay(path, p, model, height=0)


def test_messages_go_to_the_patchvec_logger(model, caplog):
    with caplog.at_level("INFO", logger="patchvec"):
        model.predict(fixture_images())
    assert any(r.name == "patchvec" and "6/6 images" in r.getMessage() for r in caplog.records)
    caplog.clear()
    patchvec.set_quiet(True)
    try:
        with caplog.at_level("INFO", logger="patchvec"):
            model.predict(fixture_images())
    finally:
        patchvec.set_quiet(False)
    assert not caplog.records


def test_the_shortlist_search_keeps_the_image_scores_and_the_program_agrees(model, model_path):
    shortlist = patchvec.Model.load(model_path, search="shortlist")
    assert shortlist.search == "shortlist"
    assert model.search == "exact"  # auto, for a bank this small
    expected = model.predict(fixture_images())
    got = shortlist.predict(fixture_images())
    assert [p.score for p in got] == [p.score for p in expected]
    assert [p.verdict for p in got] == [p.verdict for p in expected]
    for e, g in zip(expected, got):
        assert np.all(g.map >= e.map * (1 - 1e-6))  # a missed neighbour is only ever farther
    cli = run_json("predict", "--model", model_path, "--json", "--search", "shortlist",
                   *fixture_images())
    assert cli["search"] == "shortlist"
    assert cli["timings"]["remeasured_patches"] >= len(got)
    assert [p["score"] for p in cli["predictions"]] == [p.score for p in got]
    with pytest.raises(patchvec.Error, match="unknown search 'fast'"):
        patchvec.Model.load(model_path, search="fast")
