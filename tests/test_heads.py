"""Attribute heads trained on labelled products: custom taxonomy, model check, abstention, precedence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from catalog_intel.inference.heads import FEATURES_CLIP, Head, apply_heads, load_head, save_head
from catalog_intel.errors import HeadError
from catalog_intel.training.heads import fit_head
from conftest import write_config

# A shop's own taxonomy: a garment type the vocabulary lacks ("kimono") and an attribute
# zero-shot does not know at all ("occasion"), told apart here by the garment's colour.
SHOP = {"red": ("kimono", "party", (200, 30, 40)), "blue": ("t-shirt", "office", (30, 60, 190))}


def write_shop(folder: Path, per_class: int, seed: int) -> Path:
    """Product photos (a garment-shaped patch on a white sweep, shade and size varied) + labels.csv."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    rows = []
    for name, (category, occasion, rgb) in SHOP.items():
        for i in range(per_class):
            img = Image.new("RGB", (96, 128), (245, 245, 243))
            shade = np.clip(np.array(rgb) + rng.integers(-25, 25, 3), 0, 255)
            w, h = int(rng.integers(40, 70)), int(rng.integers(60, 100))
            patch = Image.new("RGB", (w, h), tuple(int(v) for v in shade))
            img.paste(patch, ((96 - w) // 2, (128 - h) // 2))
            file = f"images/{name}-{seed}-{i}.png"
            img.save(folder / file)
            rows.append({"file": file, "category": category, "occasion": occasion, "sleeve": ""})
    pl.DataFrame(rows).write_csv(folder / "labels.csv")
    return folder / "labels.csv"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    from catalog_intel.cli import main

    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture(scope="module")
def shop_heads(tmp_path_factory, tiny_clip):
    """Heads trained once for the module on a labelled shop (its photos in shop/images)."""
    import contextlib
    import io

    from catalog_intel.cli import main

    root = tmp_path_factory.mktemp("shop-heads")
    labels = write_shop(root / "shop", per_class=10, seed=1)
    heads, out = root / "heads", io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["train-heads", "--labels", str(labels), "--out", str(heads), "--config",
                   str(write_config(root / "catalog-intel.toml", tiny_clip)), "--cache-dir", str(root / "cache")])
    assert rc == 0
    return heads, out.getvalue()


def test_custom_value_and_new_attribute_are_learnt(shop_heads):
    heads, out = shop_heads
    garment, occasion = load_head(heads / "garment_type.json"), load_head(heads / "occasion.json")
    assert garment.classes == ("kimono", "t-shirt")  # "kimono" is not in the zero-shot vocabulary
    assert occasion.classes == ("office", "party")
    assert occasion.meta["label_column"] == "occasion" and garment.meta["label_column"] == "category"
    assert len(occasion.meta["training_set_sha256"]) == 64
    assert occasion.meta["scores"]["cv"]["accuracy"] == 1.0
    assert occasion.meta["scores"]["cv"]["majority_accuracy"] == 0.5
    assert not (heads / "sleeve.json").exists()  # no labelled row: no head
    assert "occasion" in out and "sleeve" in out
    report = json.loads((heads / "train_report.json").read_text())
    assert report["attributes"]["sleeve"]["skipped"].startswith("needs two values")


@pytest.mark.slow
def test_run_with_heads_publishes_the_shop_taxonomy_and_evaluate_scores_it(shop_heads, tmp_path, config_file,
                                                                           cache_dir, capsys):
    heads, _ = shop_heads
    unseen = write_shop(tmp_path / "unseen", per_class=4, seed=2)
    out = tmp_path / "out"
    rc, _, err = cli(capsys, "run", str(unseen.parent / "images"), "--out", str(out), "--config", str(config_file),
                     "--cache-dir", str(cache_dir), "--no-llm", "--heads", str(heads))
    assert rc == 0, err
    table = pl.read_parquet(out / "catalog.parquet")
    assert table.height == 8 and pl.read_csv(out / "rejects.csv").height == 0  # the checks accept "kimono"
    red = table.filter(pl.col("image").str.starts_with("red"))
    assert red["garment_type"].to_list() == ["kimono"] * 4 and red["occasion"].to_list() == ["party"] * 4
    assert set(table["garment_type_source"]) == {"head"} and set(table["occasion_source"]) == {"head"}
    assert table["sleeve"].is_in(["sleeveless", "short sleeve", "long sleeve", "unknown"]).all()  # zero-shot
    rc, report, err = cli(capsys, "evaluate", "--pred", str(out / "catalog.parquet"), "--labels", str(unseen),
                          "--heads", str(heads), "--json", str(tmp_path / "eval.json"))
    assert rc == 0, err
    scored = json.loads((tmp_path / "eval.json").read_text())["attributes"]
    assert scored["occasion"]["accuracy"] == 1.0 and scored["occasion"]["support"] == 8
    assert scored["garment_type"]["accuracy"] == 1.0 and scored["garment_type"]["no_counterpart"] == {}


def test_run_refuses_a_head_trained_for_another_model(shop_heads, tmp_path, config_file, cache_dir, capsys):
    from conftest import make_tiny_clip

    heads, _ = shop_heads
    other = make_tiny_clip(tmp_path / "other-model", seed=7)
    rc, _, err = cli(capsys, "run", str(heads.parent / "shop" / "images"), "--out", str(tmp_path / "out"),
                     "--config", str(config_file), "--clip-checkpoint", other["clip.checkpoint"],
                     "--cache-dir", str(cache_dir), "--no-llm", "--heads", str(heads))
    assert rc == 2
    assert "was trained on CLIP model tiny-clip@sha256:" in err and "Retrain it" in err
    assert not (tmp_path / "out" / "catalog.parquet").exists()


def toy_head(temperature: float = 1.0) -> Head:
    """Two features, three classes: logits are the features themselves (third class 0)."""
    coef = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    return Head("sleeve", ("long sleeve", "short sleeve", "sleeveless"), FEATURES_CLIP, "m", coef,
                np.zeros(3, np.float32), np.zeros(2, np.float32), np.ones(2, np.float32), temperature)


def zero_shot(n: int) -> pl.DataFrame:
    return pl.DataFrame({"sha256": [f"s{i}" for i in range(n)], "sleeve": ["sleeveless"] * n,
                         "sleeve_raw": ["sleeveless"] * n, "sleeve_confidence": [0.9] * n,
                         "sleeve_margin": [0.5] * n, "color": ["red"] * n})


def embeddings(rows: list[list[float]]) -> pl.DataFrame:
    return pl.DataFrame({"sha256": [f"s{i}" for i in range(len(rows))],
                         "embedding": pl.Series(np.array(rows, np.float32), dtype=pl.Array(pl.Float32, 2))})


def test_head_abstains_below_its_calibrated_threshold():
    x = [[4.0, 0.0], [1.0, 0.5], [0.0, 4.0]]
    head = toy_head(temperature=2.0)
    out = apply_heads(zero_shot(3), embeddings(x), {"sleeve": head}, {"sleeve": 0.6})
    logits = np.hstack([np.array(x), np.zeros((3, 1))]) / 2.0  # the third class's logit is 0; temperature 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert out["sleeve_confidence"].to_list() == pytest.approx(probs.max(axis=1).tolist(), rel=1e-5)
    assert out["sleeve_confidence"][1] < 0.6 < out["sleeve_confidence"][0]
    assert out["sleeve"].to_list() == ["long sleeve", "unknown", "short sleeve"]
    assert out["sleeve_raw"].to_list() == ["long sleeve", "long sleeve", "short sleeve"]  # kept for calibration
    assert out["sleeve_source"].to_list() == ["head"] * 3
    assert out["color"].to_list() == ["red"] * 3  # no colour head: zero-shot stays


def test_facts_beat_head_beat_zero_shot():
    frame = zero_shot(3).with_columns(pl.Series("sleeve_source", ["facts", "clip", None]))
    frame = frame.with_columns(pl.when(pl.col("sleeve_source") == "facts").then(pl.lit("long sleeve"))
                               .otherwise(pl.col("sleeve")).alias("sleeve"))
    out = apply_heads(frame, embeddings([[0.0, 5.0]] * 3), {"sleeve": toy_head()}, {"sleeve": 0.0})
    assert out["sleeve"].to_list() == ["long sleeve", "short sleeve", "short sleeve"]
    assert out["sleeve_source"].to_list() == ["facts", "head", "head"]
    assert out["sleeve_confidence"][0] == 0.9 and out["sleeve_confidence"][1] > 0.9


def test_fitted_probabilities_are_calibrated_on_held_out_rows():
    """Overlapping classes: the temperature-scaled probability of the top class matches its accuracy."""
    from catalog_intel.training.heads import expected_calibration_error

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1.0, (3, 40))
    y = rng.integers(0, 3, 1500)
    x = centres[y] + rng.normal(0, 2.5, (1500, 40))
    names = np.array(["a", "b", "c"])[y].tolist()
    head, report = fit_head("pattern", x[:900], names[:900], "m", FEATURES_CLIP)
    probs = head.predict_proba(x[900:])
    assert 0.5 < (probs.argmax(axis=1) == y[900:]).mean() < 0.95  # a hard problem, not a trivial one
    assert expected_calibration_error(probs, y[900:]) < 0.06
    assert report["cv"]["ece_calibrated"] < 0.06


def test_head_files_load_without_pickles(tmp_path):
    path = save_head(toy_head(1.5), tmp_path)
    with np.load(tmp_path / "sleeve.npz", allow_pickle=False) as w:
        assert set(w.files) == {"coef", "intercept", "mean", "scale"}
    back = load_head(path)
    assert back.classes == toy_head().classes and back.temperature == 1.5
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(HeadError, match="not a catalog-intel head"):
        load_head(tmp_path / "bad.json")


def test_config_names_a_head_per_attribute(tmp_path):
    from catalog_intel.errors import ConfigError
    from catalog_intel.settings import load_config, resolve_settings
    from catalog_intel.inference.heads import published_attributes

    save_head(replace_attribute(toy_head(), "occasion"), tmp_path / "heads")
    user = tmp_path / "user.toml"
    user.write_text(f'[attributes.occasion]\nhead = "{tmp_path / "heads" / "occasion.json"}"\nmin_confidence = 0.4\n')
    config = load_config(user)
    assert config.attributes["occasion"].values == () and config.attributes["occasion"].min_confidence == 0.4
    assert published_attributes(config)["occasion"].values == toy_head().classes
    assert resolve_settings(None, heads=str(tmp_path / "heads")).attributes["occasion"].head.endswith("occasion.json")
    user.write_text("[attributes.occasion]\nmin_confidence = 0.4\n")  # neither values nor a head
    with pytest.raises(ConfigError, match="attributes.occasion"):
        load_config(user)


def replace_attribute(head: Head, name: str) -> Head:
    from dataclasses import replace

    return replace(head, attribute=name)


def test_calibrate_judges_a_colour_head_by_its_own_confidence():
    from catalog_intel.settings import load_config
    from catalog_intel.quality.evaluate import calibrate

    n = 40
    right = [i >= 20 for i in range(n)]  # the head is right exactly where it is confident
    pred = pl.DataFrame({
        "image": [f"{i}.jpg" for i in range(n)], "color": ["red"] * n,
        "color_raw": ["red" if r else "blue" for r in right],
        "color_confidence": [0.9 if r else 0.3 for r in right], "color_source": ["head"] * n,
        "color_clip": ["green"] * n, "color_clip_confidence": [0.95] * n,  # CLIP's opinion, not published
    })
    labels = pl.DataFrame({"file": [f"images/{i}.jpg" for i in range(n)], "color": ["red"] * n})
    cal = calibrate(pred, labels, load_config().attributes, 0.9, min_covered=10)
    assert cal["attributes"]["color"]["proposed"]["min_confidence"] == pytest.approx(0.31)
    assert cal["attributes"]["color"]["proposed"]["accuracy_covered"] == 1.0
