"""Where an error is deliberately not fatal, it is still logged at debug level with its traceback."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest


def _traceback_of(caplog, logger: str):
    found = [r for r in caplog.records if r.name == logger and r.levelno == logging.DEBUG and r.exc_info]
    assert found, f"nothing logged at debug with a traceback by {logger}"
    return found[-1].exc_info[1]


def test_background_import_failure_is_logged(caplog):
    from catalog_intel.cli import _import_after

    done = threading.Thread(target=lambda: None)
    done.start()
    with caplog.at_level(logging.DEBUG, logger="catalog_intel.cli"):
        _import_after("catalog_intel_no_such_module", done)
        for t in threading.enumerate():
            if t.name == "import-catalog_intel_no_such_module":
                t.join(10)
    assert isinstance(_traceback_of(caplog, "catalog_intel.cli"), ModuleNotFoundError)


def test_clip_preload_failure_is_logged(caplog, monkeypatch):
    from catalog_intel.settings import load_config
    from catalog_intel.inference import zeroshot

    def broken(*args, **kwargs):
        raise RuntimeError("checkpoint unreadable")

    monkeypatch.setattr(zeroshot, "model_id", broken)
    with caplog.at_level(logging.DEBUG, logger="catalog_intel.inference.zeroshot"):
        zeroshot.preload(load_config()).join(10)
    assert str(_traceback_of(caplog, "catalog_intel.inference.zeroshot")) == "checkpoint unreadable"


def test_unreadable_kept_neighbours_are_logged(tmp_path, caplog):
    from catalog_intel.search.index import index_dir
    from catalog_intel.search.neighbours import NEAR_MANIFEST, load_neighbours

    folder = Path(str(index_dir(tmp_path)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NEAR_MANIFEST).write_text('{"model_id": "m", "kind"')  # cut short by a kill
    with caplog.at_level(logging.DEBUG, logger="catalog_intel.search.neighbours"):
        assert load_neighbours(tmp_path, SimpleNamespace(model_id="m", kind="exact"), 5) is None
    assert type(_traceback_of(caplog, "catalog_intel.search.neighbours")).__name__ == "JSONDecodeError"


def test_phase_times_failure_is_logged(caplog, monkeypatch):
    from prefect.events.worker import EventsWorker

    from catalog_intel.orchestration.phases import current_phase_times

    def broken(*args, **kwargs):
        raise ConnectionError("API gone")

    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "00000000-0000-0000-0000-000000000001")
    monkeypatch.setattr(EventsWorker, "drain_all", broken)
    with caplog.at_level(logging.DEBUG, logger="catalog_intel.orchestration.phases"):
        assert current_phase_times() == {}
    assert str(_traceback_of(caplog, "catalog_intel.orchestration.phases")) == "API gone"


@pytest.fixture(autouse=True)
def _propagate():
    """Prefect's logging set-up may stop our loggers' records from reaching caplog's root handler."""
    loggers = [logging.getLogger(n) for n in ("catalog_intel", "catalog_intel.cli")]
    before = [lg.propagate for lg in loggers]
    for lg in loggers:
        lg.propagate = True
    yield
    for lg, p in zip(loggers, before):
        lg.propagate = p
