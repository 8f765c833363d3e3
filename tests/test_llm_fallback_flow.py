"""A server that answers 400 to response_format json_schema: every product is still described."""

import polars as pl

from conftest import make_source, run_catalog


def test_flow_with_a_server_refusing_json_schema(prefect_server, tmp_path, cache_dir, config_file):
    from llm_server import FakeLLMServer

    from catalog_intel.pipeline.summary import RunSummary

    src = make_source(tmp_path / "src", 5)
    with FakeLLMServer(reject_response_format=("json_schema",)) as server:
        summary = run_catalog(src, tmp_path / "out", config_file, cache_dir, llm_base_url=server.base_url)
        kinds = [(r["body"].get("response_format") or {}).get("type") for r in server.request_log]
    table = pl.read_parquet(tmp_path / "out" / "catalog.parquet")
    assert summary["rows"] == 5 and summary["rejects"] == 0 and table["title"].null_count() == 0
    assert summary["llm_schema_fallbacks"] == kinds.count("json_schema") >= 1
    assert kinds[-1] is None and summary["llm_failed"] == 0
    assert "refused response_format json_schema" in RunSummary(**summary).one_line()
