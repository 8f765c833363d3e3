"""One declared table of run overrides drives the flow parameters, the CLI flags and the config merge."""

import inspect
from pathlib import Path

import pytest

from catalog_intel.settings import OVERRIDES, overrides_to_keys, resolve_settings

SAMPLE = {str: "x-value", int: 7}
CHOSEN = {"color_policy": "pixels", "task_runner": "dask", "cache_dir": "/tmp/ci-cache",
          "clip_checkpoint": "/models/w.pt", "dask_address": "tcp://127.0.0.1:8786", "facts": "/data/facts.csv",
          "export": "shopify,gmc"}


def _value(o):
    return CHOSEN.get(o.name, True if o.type is bool else SAMPLE[o.type])


def test_every_override_is_a_flow_parameter_a_cli_flag_and_a_config_key(tmp_path):
    from catalog_intel.cli import build_parser
    from catalog_intel.orchestration.flow import catalog_flow

    params = inspect.signature(catalog_flow.fn).parameters
    schema = catalog_flow.parameters.properties
    argv = ["run", "src", "--out", "o"]
    for o in OVERRIDES:
        assert o.name in params and o.name in schema, o.name
        argv += [o.flag] if o.type is bool else [o.flag, str(_value(o))]
    args = build_parser().parse_args(argv)
    given = {o.name: getattr(args, o.name) for o in OVERRIDES}
    # a heads folder must hold heads (tests/test_heads.py covers it): checked by key here
    keys = overrides_to_keys(given)
    assert keys["paths.heads_dir"] == "x-value" and keys["exports.formats"] == ["shopify", "gmc"]
    config = resolve_settings(None, **{**given, "heads": None})
    for o in OVERRIDES:
        if o.name == "heads":
            continue
        section, key = o.key.split(".")
        field = {"model_config": "model_config_path"}.get(key, key)
        expected = False if o.invert else _value(o)
        expected = tuple(o.parse(expected)) if o.parse else expected
        assert getattr(getattr(config, section), field) == expected, o.key
    assert set(params) == {"source", "out_dir", "config_path", *(o.name for o in OVERRIDES)}
    assert schema["task_runner"]["anyOf"][0]["enum"] == ["local", "dask"]  # choices reach the Prefect UI


def test_unset_overrides_keep_the_file_and_unknown_ones_are_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[runner]\ntask_runner = "dask"\nworkers = 3\n[run]\nshard_size = 9\n')
    config = resolve_settings(str(path), shard_size=None, no_llm=False, workers=None)
    assert (config.runner.task_runner, config.runner.workers, config.run.shard_size) == ("dask", 3, 9)
    assert config.llm.enabled is True
    assert overrides_to_keys({"no_llm": True}) == {"llm.enabled": False}
    with pytest.raises(TypeError, match="shard_sise"):
        overrides_to_keys({"shard_sise": 3})


def test_paths_are_resolved_once_so_workers_read_no_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CATALOG_INTEL_CACHE", "rel-cache")
    config = resolve_settings(None, clip_checkpoint="w.pt")
    assert str(config.paths.cache_path) == str(tmp_path / "rel-cache")
    assert config.clip.checkpoint == str(tmp_path / "w.pt")
    # A worker with another environment, another home and another working directory sees the same paths.
    monkeypatch.setenv("CATALOG_INTEL_CACHE", "/elsewhere")
    monkeypatch.setenv("HOME", "/nowhere")
    monkeypatch.chdir(Path("/"))
    import pickle

    shipped = pickle.loads(pickle.dumps(config))
    assert str(shipped.paths.cache_path) == str(tmp_path / "rel-cache")
    assert str(resolve_settings(None, cache_dir="~/c").paths.cache_path) == "/elsewhere"  # env still wins, as before


def test_runner_choice_is_checked_before_any_work():
    from catalog_intel.errors import ConfigError
    from catalog_intel.orchestration.runners import check_runner, describe_runner

    local = resolve_settings(None)
    assert check_runner(local, embedded_llm=True) is None and describe_runner(local) == "local"
    remote = resolve_settings(None, task_runner="dask", dask_address="tcp://10.0.0.5:8786")
    assert describe_runner(remote) == "dask tcp://10.0.0.5:8786"
    note = check_runner(remote, embedded_llm=True)  # the embedded LLM listens on the flow's machine only
    assert "copy step runs here" in note and "--llm-base-url" in note
    assert check_runner(remote, embedded_llm=False) is None
    assert check_runner(resolve_settings(None, task_runner="dask", no_llm=True), embedded_llm=True) is None
    assert describe_runner(resolve_settings(None, task_runner="dask", workers=3)) == "dask local cluster"
    with pytest.raises(ConfigError, match="10.0.0.5:8786.*tcp://HOST:8786"):
        check_runner(resolve_settings(None, task_runner="dask", dask_address="10.0.0.5:8786"), embedded_llm=False)
