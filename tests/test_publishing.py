"""Readers can tell a complete output set: _SUCCESS.json goes first and comes back last, naming
the run the tables carry; data_docs is swapped by rename, never missing."""

from __future__ import annotations

import json
import os
import shutil

import polars as pl
import pytest
from PIL import Image

from catalog_intel.io.filesystem import publish_tree
from conftest import run_catalog, write_config


def _folder(path, text: str) -> str:
    path.mkdir()
    (path / "index.html").write_text(text)
    return str(path)


def test_publish_tree_moves_the_old_folder_aside_before_the_new_one_goes_in(tmp_path, monkeypatch):
    target = tmp_path / "out" / "data_docs"
    target.parent.mkdir()
    _folder(target, "old")
    new = _folder(tmp_path / "staging", "new")
    steps = []
    rename, rmtree = os.rename, shutil.rmtree

    def logged_rename(src, dst):
        steps.append(("rename", os.path.basename(src), os.path.basename(dst)))
        rename(src, dst)

    def logged_rmtree(path, *args, **kwargs):
        # Whenever anything is deleted, a whole data_docs is in place.
        steps.append(("rmtree", os.path.basename(path), (target / "index.html").read_text()))
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(os, "rename", logged_rename)
    monkeypatch.setattr(shutil, "rmtree", logged_rmtree)
    publish_tree(new, target)

    staged = steps[0][2]
    aside = steps[1][2]
    assert steps == [("rename", "staging", staged), ("rename", "data_docs", aside), ("rename", staged, "data_docs"),
                     ("rmtree", aside, "new")]
    assert staged.startswith("data_docs.new-") and aside.startswith("data_docs.old-")
    assert sorted(os.listdir(target.parent)) == ["data_docs"]


def test_publish_tree_puts_the_old_folder_back_when_the_new_one_cannot_go_in(tmp_path, monkeypatch):
    target = tmp_path / "data_docs"
    _folder(target, "old")
    new = _folder(tmp_path / "staging", "new")
    rename = os.rename

    def failing_rename(src, dst):
        if os.path.basename(dst) == "data_docs" and ".new-" in os.path.basename(src):
            raise OSError(28, "No space left on device")
        rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="No space"):
        publish_tree(new, target)
    assert (target / "index.html").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["data_docs"]


def test_publish_tree_into_an_empty_place(tmp_path):
    publish_tree(_folder(tmp_path / "staging", "new"), tmp_path / "a" / "data_docs")
    assert (tmp_path / "a" / "data_docs" / "index.html").read_text() == "new"
    assert sorted(os.listdir(tmp_path / "a")) == ["data_docs"] and not (tmp_path / "staging").exists()


@pytest.mark.slow
def test_success_file_is_withdrawn_while_tables_are_replaced_and_names_the_tables_run(
        prefect_server, tiny_clip, tmp_path, monkeypatch):
    from catalog_intel.orchestration import tasks
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for k in range(4):
        Image.new("RGB", (64, 80), (60 * k, 200 - 40 * k, 90)).save(src / f"p{k}.png")
    config = write_config(tmp_path / "catalog-intel.toml", tiny_clip, llm=None)

    def run():
        return run_catalog(src, out, config, no_llm=True)

    run()
    first = json.loads((out / "_SUCCESS.json").read_text())
    run_ids = pl.read_parquet(out / "catalog.parquet")["run_id"].unique().to_list()
    assert run_ids == [first["run_id"]] and len(first["run_id"]) == 36
    assert (first["rows"], first["rejects"]) == (4, 0)
    assert first["outputs"]["catalog_parquet"] == str(out / "catalog.parquet")

    seen = {}
    write_outputs = tasks.write_outputs

    def fail_after_the_parquet(table, rejects, out_dir):
        seen["success_during_export"] = (out / "_SUCCESS.json").exists()
        write_outputs(table, rejects, out_dir)
        raise OSError("disk full (injected between the tables and the commit file)")

    monkeypatch.setattr(tasks, "write_outputs", fail_after_the_parquet)
    with pytest.raises(OSError, match="injected"):
        run()
    assert seen == {"success_during_export": False}
    assert not (out / "_SUCCESS.json").exists()  # the tables were replaced, but no reader takes them as complete

    monkeypatch.setattr(tasks, "write_outputs", write_outputs)
    run()
    last = json.loads((out / "_SUCCESS.json").read_text())
    assert last["run_id"] != first["run_id"]
    assert pl.read_parquet(out / "catalog.parquet")["run_id"].unique().to_list() == [last["run_id"]]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("data_docs")) == ["data_docs"]
