import pytest

from catalog_intel.schemas import ATTRIBUTE_ORDER
from catalog_intel.errors import ConfigError
from catalog_intel.settings import load_config


def test_defaults_cover_the_original_vocabulary_and_more():
    cfg = load_config()
    original = {
        "color": {"black", "white", "red", "blue", "green", "yellow", "pink", "beige"},
        "neckline": {"round neck", "v-neck", "collared"},
        "sleeve": {"sleeveless", "short sleeve", "long sleeve"},
        "pattern": {"solid", "striped", "printed", "floral"},
        "fabric": {"cotton", "polyester", "denim", "silk"},
        "fit": {"regular", "slim", "loose"},
    }
    for attribute, values in original.items():
        assert values <= set(cfg.attributes[attribute].values), attribute
    assert {"grey", "navy", "brown", "purple", "orange"} <= set(cfg.attributes["color"].values)
    assert {"t-shirt", "blouse", "shirt", "sweater", "cardigan", "hoodie", "tank top"} <= set(cfg.attributes["garment_type"].values)
    assert list(cfg.attributes)[: len(ATTRIBUTE_ORDER)] == list(ATTRIBUTE_ORDER)
    assert cfg.clip.model == "ViT-B-32" and cfg.clip.pretrained == "laion2b_s34b_b79k"


def test_file_then_overrides_take_precedence(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[clip]\nmodel = "ViT-B-16"\nbatch_size = 8\n[attributes.fit]\nmin_confidence = 0.9\n')
    cfg = load_config(path, {"clip.batch_size": 4, "llm.model": None})
    assert cfg.clip.model == "ViT-B-16"          # from the file
    assert cfg.clip.batch_size == 4              # override beats the file
    assert cfg.llm.model == "local-model"        # None keeps the default
    assert cfg.attributes["fit"].min_confidence == 0.9
    assert cfg.attributes["fit"].values == ("regular", "slim", "loose")  # untouched keys survive a partial table


def test_errors_name_the_key_and_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[clip]\nbatch_size = 0\n")
    with pytest.raises(ConfigError, match=r"bad.toml.*clip.batch_size"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown"):
        load_config(None, {"attributes.color.values": ["red", "unknown"]})
    with pytest.raises(ConfigError, match="llm.typo"):
        load_config(None, {"llm.typo": 1})


def test_vocabulary_digest_changes_with_the_vocabulary():
    a = load_config()
    b = load_config(None, {"attributes.color.values": ["red", "blue"]})
    assert a.vocabulary_digest() == load_config().vocabulary_digest()
    assert a.vocabulary_digest() != b.vocabulary_digest()


def test_a_recorded_run_config_sits_between_defaults_and_the_file(tmp_path):
    """`similar` / `search`: what the run recorded, then --config, then flags."""
    recorded = {"clip.model": "ViT-B-16", "clip.checkpoint": "/models/run.pt", "paths.cache_dir": "/cache/run"}
    assert load_config(None, None, base=recorded).clip.checkpoint == "/models/run.pt"
    path = tmp_path / "c.toml"
    path.write_text('[clip]\ncheckpoint = "/models/file.pt"\n[search]\ntop_k = 7\n')
    cfg = load_config(path, None, base=recorded)
    assert (cfg.clip.model, cfg.clip.checkpoint, cfg.search.top_k) == ("ViT-B-16", "/models/file.pt", 7)
    assert load_config(path, {"clip.checkpoint": "/models/flag.pt"}, base=recorded).clip.checkpoint == "/models/flag.pt"
    with pytest.raises(ConfigError, match="search.group_threshold"):
        load_config(None, {"search.group_threshold": 1.5})
