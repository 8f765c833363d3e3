import numpy as np
import polars as pl

from catalog_intel.inference.embedding import embeddings_frame
from catalog_intel.inference.zeroshot import classify, label_prompts
from catalog_intel.settings import load_config


def _one_hot_index(attributes, dim=64):
    """Label embeddings that are orthonormal basis vectors: the answer for an
    image embedding built from them is known exactly."""
    rows, vectors = [], []
    for name, spec in attributes.items():
        for value in spec.values:
            vec = np.zeros(dim, dtype=np.float32)
            vec[len(vectors)] = 1.0
            rows.append((name, value)), vectors.append(vec)
    return pl.DataFrame({
        "attribute": [r[0] for r in rows], "value": [r[1] for r in rows],
        "embedding": pl.Series(np.stack(vectors), dtype=pl.Array(pl.Float32, dim)),
        "logit_scale": [100.0] * len(rows),
    }), {r: i for i, r in enumerate(rows)}


def test_classify_picks_the_nearest_value_and_abstains_when_unsure():
    cfg = load_config()
    attributes = {k: cfg.attributes[k] for k in ("color", "sleeve")}
    index, pos = _one_hot_index(attributes)
    clear = np.zeros(64, dtype=np.float32)
    clear[pos[("color", "navy")]] = 1.0
    clear[pos[("sleeve", "long sleeve")]] = 1.0
    torn = np.zeros(64, dtype=np.float32)  # equally close to five colours: softmax ~0.2 each < 0.25
    for c in ("red", "pink", "orange", "purple", "brown"):
        torn[pos[("color", c)]] = 1.0
    torn[pos[("sleeve", "sleeveless")]] = 1.0
    vectors = np.stack([clear, torn])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = classify(embeddings_frame(["a", "b"], vectors, "m"), index, attributes)

    assert out["sha256"].to_list() == ["a", "b"]
    assert out["color"].to_list() == ["navy", "unknown"]
    assert out["color_raw"][1] in {"red", "pink", "orange", "purple", "brown"}
    assert out["color_confidence"][0] > 0.99
    assert abs(out["color_confidence"][1] - 0.2) < 0.01 and out["color_margin"][1] < 0.01
    assert out["sleeve"].to_list() == ["long sleeve", "sleeveless"]
    for col in ("color_confidence", "sleeve_confidence", "color_margin"):
        assert out[col].is_between(0, 1).all()


def test_threshold_is_per_attribute():
    cfg = load_config(None, {"attributes.color.min_confidence": 0.0, "attributes.sleeve.min_confidence": 1.0})
    attributes = {k: cfg.attributes[k] for k in ("color", "sleeve")}
    index, pos = _one_hot_index(attributes)
    index = index.with_columns(pl.lit(10.0).alias("logit_scale"))  # no saturated probabilities
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = classify(embeddings_frame([str(i) for i in range(20)], vectors, "m"), index, attributes)
    assert (out["color"] != "unknown").all()
    assert (out["sleeve"] == "unknown").all()


def test_prompt_ensembles_use_every_template_and_phrase():
    cfg = load_config()
    prompts = {(a, v): p for a, v, p in label_prompts(cfg.attributes)}
    assert len(prompts) == sum(len(s.values) for s in cfg.attributes.values())
    navy = prompts[("color", "navy")]
    assert len(navy) == len(cfg.attributes["color"].templates)
    assert all("navy blue" in p for p in navy)
