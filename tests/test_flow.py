"""End-to-end: real Prefect runs, real images, real Parquet, a real HTTP LLM server."""

import csv
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from catalog_intel.schemas import CSV_COLUMNS
from conftest import make_source, run_catalog

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_flow_writes_all_outputs_and_a_rerun_costs_nothing(prefect_server, seed_images, tmp_path, cache_dir,
                                                          config_file, fake_llm, monkeypatch, capfd, caplog):
    out = tmp_path / "out"
    secret = "sk-catalog-intel-test-SECRET-4242"
    monkeypatch.setenv("CATALOG_INTEL_LLM_API_KEY", secret)
    first = run_catalog(seed_images, out, config_file, cache_dir, llm_base_url=fake_llm.base_url)
    assert first["inputs"] == 30 and first["rows"] == 30 and first["rejects"] == 0
    assert first["embeddings_computed"] == 30 and first["embeddings_cached"] == 0
    calls_first = fake_llm.requests
    assert first["llm_calls"] == calls_first >= 1

    with open(out / "catalog.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 31
    assert {r[0] for r in rows[1:]} == {p.name for p in seed_images.iterdir()}
    assert all(r[7] and r[8] and r[11] for r in rows[1:])  # title, bullets, tags present

    table = pl.read_parquet(out / "catalog.parquet")
    assert table.height == 30
    assert table.schema["bullet_points"] == pl.List(pl.Utf8)
    for column in ("color_confidence", "garment_type", "clip_model_id", "prompt_version", "run_id", "processed_at"):
        assert column in table.columns
    assert table["clip_model_id"][0].startswith("tiny-clip@sha256:")
    assert (out / "rejects.csv").read_text().strip() == "image,reason"
    result = json.loads((out / "validation_result.json").read_text())
    assert result["success"] is True and result["statistics"]["evaluated_expectations"] > 40
    assert (out / "data_docs" / "index.html").is_file()

    # Similar products, groups, the search index, the run record and the review report.
    assert table.schema["similar_images"] == pl.List(pl.Utf8) and table.schema["similar_scores"] == pl.List(pl.Float32)
    for row in table.iter_rows(named=True):
        assert len(row["similar_images"]) == 5 and row["image"] not in row["similar_images"]
        assert row["similar_scores"] == sorted(row["similar_scores"], reverse=True)
    smallest = table.group_by("group_id").agg(pl.col("image").min(), pl.len())
    assert all(g == i for g, i, _ in smallest.iter_rows())  # group id = smallest image id of the group
    assert dict(zip(smallest["group_id"], smallest["len"])) == dict(zip(table["group_id"], table["group_size"]))
    assert table["duplicate_of"].null_count() == 30
    assert first["search"]["kind"] == "exact" and first["search"]["size"] == 30 and first["search"]["added"] == 30
    assert json.loads((out / "search" / "index.json").read_text())["ntotal"] == 30
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["clip_model_id"] == table["clip_model_id"][0]
    assert Path(run_config["clip"]["checkpoint"]).is_absolute()
    report = out / "report" / "index.html"
    assert first["outputs"]["report"] == str(report.resolve())
    assert report.read_text().count('<article class="card') == 30 and len(list((out / "report" / "thumbs").iterdir())) == 30
    assert _artifact("catalog-review-report").data.endswith(f"({report.resolve().as_uri()})")  # [text](file://...)
    assert "| search index | exact, 30 distinct images, 30 added (rebuilt) |" in _artifact("catalog-run-summary").data

    second = run_catalog(seed_images, out, config_file, cache_dir, llm_base_url=fake_llm.base_url)
    assert second["embeddings_computed"] == 0 and second["embeddings_cached"] == 30
    assert second["llm_calls"] == 0 and fake_llm.requests == calls_first
    assert second["search"]["added"] == 0 and not second["search"]["rebuilt"]
    again = pl.read_parquet(out / "catalog.parquet")
    stable = [c for c in table.columns if c not in ("run_id", "processed_at")]
    assert again.select(stable).equals(table.select(stable))

    # The API key reached the server but nothing we write or log.
    assert all(r["headers"].get("authorization") == f"Bearer {secret}" for r in fake_llm.request_log)
    written = [p for p in out.rglob("*") if p.is_file()] + [p for p in cache_dir.rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret.encode() in p.read_bytes()]
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err + caplog.text


def _artifact(key: str):
    """The latest Prefect artifact with this key, read back from the server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                      sort=ArtifactSort.CREATED_DESC, limit=1)
    assert found, f"no artifact {key}"
    return found[0]


@pytest.mark.slow
def test_search_index_grows_incrementally_across_runs(prefect_server, seed_images, tmp_path, cache_dir, config_file):
    import polars as pl

    images = sorted(seed_images.iterdir())
    src = make_source(tmp_path / "src", 10)
    out = tmp_path / "out"
    first = run_catalog(src, out, config_file, cache_dir, no_llm=True)
    assert first["search"]["added"] == 10 and first["search"]["rebuilt"]
    manifest = json.loads((out / "search" / "index.json").read_text())
    before = pl.read_parquet(out / "search" / manifest["ids_file"])["sha256"].to_list()

    for p in images[10:]:  # twenty new photos arrive; one old one leaves
        (src / p.name).write_bytes(p.read_bytes())
    (src / images[0].name).unlink()
    second = run_catalog(src, out, config_file, cache_dir, no_llm=True)
    assert second["search"] | {"reason": ""} == {"kind": "exact", "size": 29, "added": 20, "retired": 1,
                                                 "reactivated": 0, "rebuilt": False, "reason": "",
                                                 "groups": second["search"]["groups"],
                                                 "grouped_images": second["search"]["grouped_images"],
                                                 "exact_duplicates": 0}
    manifest = json.loads((out / "search" / "index.json").read_text())
    ids = pl.read_parquet(out / "search" / manifest["ids_file"])
    assert ids.height == manifest["ntotal"] == 30 and ids["sha256"].to_list()[:10] == before  # old ids kept
    assert ids.filter(~pl.col("active"))["sha256"].to_list() == [before[0]]
    table = pl.read_parquet(out / "catalog.parquet")
    assert table.height == 29 and images[0].name not in set(table["similar_images"].explode())


@pytest.mark.slow
def test_bad_images_and_llm_failures_go_to_rejects(prefect_server, tmp_path, cache_dir, config_file, seed_images):
    from llm_server import FakeLLMServer, FaultPlan

    src = make_source(tmp_path / "src", 6, extra={"copy of data (1).jpg": (seed_images / "data (1).jpg").read_bytes(),
                                                  "empty.jpg": b"", "readme.png": b"not a picture"})
    out = tmp_path / "out"
    config_file.write_text(config_file.read_text() + "[run]\nmax_reject_share = 0.9\n")
    plan = FaultPlan.fail_product(lambda a: a.get("sleeve") == "long sleeve", kind="http_500")
    with FakeLLMServer(faults=plan) as server:
        summary = run_catalog(src, out, config_file, cache_dir, llm_base_url=server.base_url)
    rejects = dict(csv.reader(open(out / "rejects.csv")))
    assert rejects.pop("image") == "reason"
    assert rejects["empty.jpg"] == "empty file (0 bytes)"
    assert rejects["readme.png"].startswith("not an image")
    failed_llm = {k for k, v in rejects.items() if v.startswith("LLM copy failed: LLM server answered HTTP 500")}
    table = pl.read_parquet(out / "catalog.parquet")
    assert summary["inputs"] == 9 == table.height + len(rejects)
    assert summary["embeddings_computed"] == 6  # the renamed copy shares its twin's embedding
    assert {"copy of data (1).jpg", "data (1).jpg"} <= set(table["image"]) | failed_llm
    assert summary["llm_failed"] >= 1 and len(failed_llm) >= 1
    if "copy of data (1).jpg" in set(table["image"]) and "data (1).jpg" in set(table["image"]):
        twins = table.filter(pl.col("image").str.contains("data \\(1\\)")).sort("image")
        # the smallest id is the original: "copy of data (1).jpg" sorts before "data (1).jpg"
        assert twins["duplicate_of"].to_list() == [None, "copy of data (1).jpg"] and twins["group_id"].n_unique() == 1
    report = (out / "report" / "index.html").read_text()
    assert report.count('<article class="card') == 7  # every decoded image, LLM failures included
    assert all(f">{name}</td>" in report for name in ("empty.jpg", "readme.png", *failed_llm))


@pytest.mark.slow
def test_same_content_in_different_shards_gives_one_row_per_image(prefect_server, tmp_path, cache_dir, config_file,
                                                                   seed_images):
    src = make_source(tmp_path / "src", 3)
    names = sorted(p.name for p in src.iterdir())
    (src / "zz twin.jpg").write_bytes((seed_images / names[0]).read_bytes())  # sorts last: another shard
    summary = run_catalog(src, tmp_path / "out", config_file, cache_dir, no_llm=True, shard_size=1)
    table = pl.read_parquet(tmp_path / "out" / "catalog.parquet")
    assert summary["rows"] == 4 and summary["rejects"] == 0
    assert sorted(table["image"]) == sorted(names + ["zz twin.jpg"])
    assert summary["embeddings_computed"] == 3
    twin = table.filter(pl.col("image").is_in([names[0], "zz twin.jpg"]))
    assert twin["sha256"].n_unique() == 1 and twin["color"].n_unique() == 1


def test_cli_without_weights_fails_at_once_with_a_clear_message(tmp_path, seed_images):
    env = {**os.environ, "CATALOG_INTEL_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "run", str(seed_images), "--out", str(tmp_path / "o"),
                           "--no-llm"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert "ViT-B-32" in proc.stderr and "laion2b_s34b_b79k" in proc.stderr
    assert "catalog-intel models pull" in proc.stderr and "--clip-checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "catalog.csv").exists()


@pytest.mark.slow
def test_cli_run_no_llm(tmp_path, seed_images, config_file):
    env = {**os.environ, "CATALOG_INTEL_CACHE": str(tmp_path / "cache"), "PREFECT_LOGGING_LEVEL": "INFO",
           "PREFECT_HOME": str(tmp_path / "prefect-home")}
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "run", str(seed_images), "--out", str(out),
                           "--config", str(config_file), "--no-llm"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "30 inputs = 30 rows + 0 rejects" in proc.stdout + proc.stderr
    table = pl.read_csv(out / "catalog.csv", infer_schema_length=0)
    assert table.columns == list(CSV_COLUMNS) and table.height == 30
    assert table["title"].null_count() == 30  # copy columns empty without an LLM
    assert table["color"].null_count() == 0
    # the run started Prefect's temporary server itself, at its first step, and reported to it:
    # Prefect started none of its own, and printed no links to a UI that server does not serve
    port = int(re.search(r"Prefect: temporary server on http://127.0.0.1:(\d+)/api", proc.stderr)[1])
    assert "Starting temporary server" not in proc.stdout + proc.stderr
    assert "View at http" not in proc.stdout + proc.stderr
    # the CLI exits without the interpreter's teardown, but its exit steps still ran, in order:
    # Prefect's log queue was drained into the server (the summary, the flow's last log line,
    # is in its database), then the server was stopped (nothing listens on its port)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with sqlite3.connect(tmp_path / "prefect-home" / "prefect.db") as db:
        logged = [m for (m,) in db.execute("select message from log") if m.startswith("catalog-intel: 30 inputs")]
    assert len(logged) == 1


def test_too_many_rejects_fail_the_run_after_writing_outputs():
    from catalog_intel.errors import RunFailed
    from catalog_intel.pipeline.summary import RunSummary

    summary = RunSummary(inputs=10, rows=7, rejects=3)
    summary.raise_if_too_many_rejects(0.3)
    with pytest.raises(RunFailed, match="3 of 10 inputs rejected .30%., over run.max_reject_share=20%"):
        summary.raise_if_too_many_rejects(0.2)


def test_phase_times_include_the_task_runs_that_just_finished(prefect_server):
    """The server records task runs from events sent in the background; the summary's phase times
    must still include the tasks that finished just before it is written."""
    from prefect import flow, task

    from catalog_intel.orchestration.phases import current_phase_times

    @task(name="phase-a")
    def phase_a(i: int) -> int:
        return i

    @task(name="phase-b")
    def phase_b() -> None:
        time.sleep(0.2)

    @flow
    def phases_flow() -> dict:
        for i in range(3):
            phase_a(i)
        phase_b()  # the last task: its events are the ones most likely still in flight
        return current_phase_times()

    for _ in range(3):
        phases = phases_flow()
        assert set(phases) == {"phase-a", "phase-b"}
        assert phases["phase-b"] >= 0.2
