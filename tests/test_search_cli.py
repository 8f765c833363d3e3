"""`catalog-intel similar` and `catalog-intel search` against a real run's output folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]


def results(text: str) -> list[tuple[str, float]]:
    """`image<TAB>score` lines -> [(image, score)]."""
    return [(line.rsplit("\t", 1)[0], float(line.rsplit("\t", 1)[1])) for line in text.splitlines() if line]


def cli(capsys, *argv: str) -> tuple[int, list[tuple[str, float]], str]:
    from catalog_intel.cli import main

    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, results(captured.out) if rc == 0 else [], captured.err


def brute_force(run, query: np.ndarray) -> dict[str, float]:
    """Cosine of `query` with every catalog image, from the embedding cache (not the index)."""
    from catalog_intel.inference.embedding import embedding_store

    table = pl.read_parquet(run.out / "catalog.parquet")
    stored = embedding_store(run.cache, table["clip_model_id"][0]).lookup(table["sha256"])
    vectors = dict(zip(stored["sha256"], stored["embedding"].to_numpy()))
    return {image: float(vectors[sha] @ query) for image, sha in zip(table["image"], table["sha256"])}


def assert_matches_brute_force(found: list[tuple[str, float]], expected: dict[str, float], k: int) -> None:
    assert len(found) == k
    assert [s for _, s in found] == pytest.approx(sorted(expected.values(), reverse=True)[:k], abs=1e-4)
    for image, score in found:
        assert score == pytest.approx(expected[image], abs=1e-4)


def load_run_model(run):
    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.settings import load_config

    config = load_config(run.config)
    return load_clip(config.clip, run.cache)


@pytest.mark.slow
def test_similar_puts_every_catalog_image_first_for_itself(catalog_run, capsys):
    table = pl.read_parquet(catalog_run.out / "catalog.parquet")
    assert table.height == 13
    twins = table.filter(pl.col("image").is_in(["data (1).jpg", "copy of data (1).jpg"])).sort("image")
    assert twins["duplicate_of"].to_list() == [None, "copy of data (1).jpg"]  # the smallest id is the original
    assert twins["group_id"].n_unique() == 1 and twins["similar_scores"].list.first().to_list() == [1.0, 1.0]
    for image in table["image"]:
        # A stored embedding needs no model: a checkpoint that does not exist is never opened.
        rc, found, err = cli(capsys, "similar", image, "-k", "5", "--out", str(catalog_run.out),
                             "--clip-checkpoint", "/nonexistent/weights.pt")
        assert rc == 0, err
        assert found[0] == (image, pytest.approx(1.0, abs=1e-4)) and len(found) == 5
        scores = [s for _, s in found]
        assert scores == sorted(scores, reverse=True)

    # By file path: the identical twin scores 1 too, but the file's own catalog row comes first.
    for name, twin in (("data (1).jpg", "copy of data (1).jpg"), ("copy of data (1).jpg", "data (1).jpg")):
        rc, found, _ = cli(capsys, "similar", str(catalog_run.src / name), "-k", "2", "--out", str(catalog_run.out))
        assert rc == 0 and [i for i, _ in found] == [name, twin]
        assert [s for _, s in found] == pytest.approx([1.0, 1.0], abs=1e-4)
    # By sha256.
    sha = table.filter(pl.col("image") == "data (2).jpg")["sha256"][0]
    rc, found, _ = cli(capsys, "similar", sha, "-k", "1", "--out", str(catalog_run.out))
    assert rc == 0 and found[0][0] == "data (2).jpg"


@pytest.mark.slow
def test_similar_embeds_a_new_photo_with_the_recorded_model(catalog_run, tmp_path):
    from catalog_intel.inference.embedding import compute_embeddings

    new = tmp_path / "new photo.jpg"  # mirrored: new content, not in the catalog
    ImageOps.mirror(Image.open(catalog_run.src / "data (12).jpg")).save(new, quality=90)
    proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "similar", str(new), "-k", "4",
                           "--out", str(catalog_run.out)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    vectors, reasons = compute_embeddings([str(new)], load_run_model(catalog_run), 1, 0, 10**8)
    assert reasons == [""]
    assert_matches_brute_force(results(proc.stdout), brute_force(catalog_run, vectors[0]), k=4)


@pytest.mark.slow
def test_text_search_uses_the_run_models_text_tower(catalog_run, capsys):
    from catalog_intel.inference.clip_model import encode_texts

    rc, found, err = cli(capsys, "search", "red floral blouse", "-k", "10", "--out", str(catalog_run.out))
    assert rc == 0, err
    query = encode_texts(load_run_model(catalog_run), ["red floral blouse"])[0]
    assert_matches_brute_force(found, brute_force(catalog_run, query), k=10)


@pytest.mark.slow
def test_search_errors_say_what_to_do(catalog_run, capsys, tmp_path):
    from conftest import make_tiny_clip

    rc, _, err = cli(capsys, "similar", "no-such-image.jpg", "--out", str(catalog_run.out))
    assert rc == 2 and "'no-such-image.jpg' is not an image file, nor an image id or sha256 in" in err
    rc, _, err = cli(capsys, "search", "red top", "--out", str(tmp_path / "empty"))
    assert rc == 2 and "index.json not found: run `catalog-intel run SOURCE --out" in err
    other = make_tiny_clip(tmp_path / "other-model", seed=1)
    rc, _, err = cli(capsys, "search", "red top", "--out", str(catalog_run.out),
                     "--clip-checkpoint", other["clip.checkpoint"])
    assert rc == 2 and "was built with CLIP tiny-clip@sha256:" in err and "not comparable" in err
