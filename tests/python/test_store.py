"""Stores and the inspector from Python return what `patchvec index` / `search --json` /
`reports` give, on the embedded store and on PostgreSQL + pgvector (the test server)."""

import ctypes
import os
import subprocess

import pytest

import patchvec
from conftest import CATEGORY, DATA, SOURCE, run, run_json, fixture_images


def scratch_database(name):
    """A new, empty database on the test server (scripts/pgvector-server.sh), through libpq."""
    if os.environ.get("PATCHVEC_TEST_DB"):
        base = os.environ["PATCHVEC_TEST_DB"]
    else:
        base = subprocess.run([str(SOURCE / "scripts" / "pgvector-server.sh"), "url"],
                              capture_output=True, text=True, check=True).stdout.strip()
    libpq = ctypes.CDLL("libpq.so.5")
    libpq.PQconnectdb.restype = ctypes.c_void_p
    libpq.PQexec.restype = ctypes.c_void_p
    libpq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    libpq.PQfinish.argtypes = [ctypes.c_void_p]
    libpq.PQclear.argtypes = [ctypes.c_void_p]
    libpq.PQresultStatus.argtypes = [ctypes.c_void_p]
    libpq.PQstatus.argtypes = [ctypes.c_void_p]
    connection = libpq.PQconnectdb(base.encode())
    assert libpq.PQstatus(connection) == 0, "cannot connect to the test server " + base
    for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        result = libpq.PQexec(connection, sql.encode())
        assert libpq.PQresultStatus(result) == 1, sql  # PGRES_COMMAND_OK
        libpq.PQclear(result)
    libpq.PQfinish(connection)
    return base[: base.rfind("/") + 1] + name


@pytest.fixture(params=["embedded", pytest.param("postgresql", marks=pytest.mark.pg)])
def location(request, tmp_path):
    if request.param == "embedded":
        return {"python": str(tmp_path / "store.pvs"), "cli": ["--store", tmp_path / "store.pvs"]}
    url = scratch_database("pytest_store")
    return {"python": url, "cli": ["--db", url]}


def test_index_and_search_are_the_programs(model, model_path, location):
    store = patchvec.open_store(location["python"])
    dataset = patchvec.Dataset.mvtec(DATA, CATEGORY)
    indexed = store.index(model, dataset)
    assert indexed["images"] == len(dataset.train) + len(dataset.test) == 12
    assert store.image_count(CATEGORY) == 12

    inspector = patchvec.Inspector([model], store)
    ours = inspector.inspect(CATEGORY, fixture_images(), report=False)
    cli = run_json("search", "--model", model_path, *location["cli"], "--json", "--no-report",
                   *fixture_images())
    assert ours == cli
    assert [r["verdict"] for r in ours] == ["normal"] * 3 + ["anomalous"] * 3
    assert len(ours[0]["matches"]) == 9  # every stored normal image: 6 train, 3 test
    assert store.search(model, fixture_images()[0], report=False) == cli[0]

    nearest = store.nearest(model.predict(fixture_images()[0]).embedding, k=3, category=CATEGORY,
                            anomalous=False)
    assert [m["id"] for m in nearest] == [m["id"] for m in cli[0]["matches"][:3]]


def test_reports_and_decisions(model, model_path, location):
    store = patchvec.open_store(location["python"])
    store.index(model, patchvec.Dataset.mvtec(DATA, CATEGORY))
    inspector = patchvec.Inspector({"synthetic": model}, store)
    reported = inspector.inspect(CATEGORY, fixture_images()[3])
    assert reported["verdict"] == "anomalous" and reported["report_id"] is not None
    reports = store.reports(CATEGORY, status="open")
    cli = run_json("reports", *location["cli"], "--category", CATEGORY, "--status", "open",
                   "--json")
    assert reports == cli
    assert reports[0]["id"] == reported["report_id"]

    decided = store.resolve(model, reported["report_id"], "defect", defect="blob", by="ann")
    assert decided["status"] == "resolved" and decided["defect"] == "blob"
    assert decided["image_id"] > 0
    with pytest.raises(patchvec.ConflictError, match="resolved already"):
        inspector.resolve(reported["report_id"], "false_alarm")
    with pytest.raises(patchvec.NotFoundError):
        store.resolve(model, 999999, "false_alarm")
    with pytest.raises(patchvec.Error, match="resolution"):
        store.resolve(model, reported["report_id"], "maybe")
    with pytest.raises(patchvec.NotFoundError, match="wood"):
        inspector.inspect("wood", fixture_images()[0])
