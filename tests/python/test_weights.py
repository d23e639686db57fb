"""patchvec.weights from Python: verify a file, fetch a URL from a server on 127.0.0.1 into a
cache of the test's own (verified by its #sha256=), and refuse when offline."""

import hashlib
import http.server
import threading

import pytest

import patchvec
from conftest import WEIGHTS


def test_verify_names_the_backbone_a_file_fits():
    fit = patchvec.weights.verify(WEIGHTS)
    assert fit["fits"] and fit["backbone"] == "resnet18" and fit["format"] == "safetensors"
    assert fit["sha256"] == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    wrong = patchvec.weights.verify(WEIGHTS, "wide_resnet50_2")
    assert not wrong["fits"] and wrong["problems"]
    assert "resnet18" in patchvec.weights.backbones()


@pytest.fixture
def server():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(WEIGHTS.parent), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_downloads_once_into_the_cache(server, tmp_path):
    digest = hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    url = f"{server}/{WEIGHTS.name}#sha256={digest}"
    file = patchvec.weights.fetch(url, "resnet18", cache_dir=tmp_path)
    assert file.startswith(str(tmp_path)) and open(file, "rb").read() == WEIGHTS.read_bytes()
    listed = patchvec.weights.list(cache_dir=tmp_path)
    assert [c["sha256"] for c in listed["cached"]] == [digest]
    assert any(n["name"] == "imagenet" for n in listed["named"])
    # Cached now: no download needed.
    assert patchvec.weights.fetch(url, "resnet18", download=False, cache_dir=tmp_path) == file
    with pytest.raises(patchvec.WeightsUnavailable) as error:
        patchvec.weights.fetch(f"{server}/other.safetensors", "resnet18", download=False,
                               cache_dir=tmp_path)
    assert error.value.reason
    bad = f"{server}/{WEIGHTS.name}#sha256={'0' * 64}"
    with pytest.raises(patchvec.WeightsUnavailable, match="sha256|SHA-256"):
        patchvec.weights.fetch(bad, "resnet18", cache_dir=tmp_path / "other")
