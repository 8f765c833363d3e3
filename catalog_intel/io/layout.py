"""Every path a run writes or reads under its output folder (OUT) and under the cache, named once.
The functions that write a part of OUT take the folder and ask the layout for their paths."""

from __future__ import annotations

import os
import re

from catalog_intel.io.filesystem import Location, location


def _part(model_id: str) -> str:
    """A model id as one folder or file name part (the spelling the caches have always used)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)


class CacheLayout:
    """The content-addressed stores under paths.cache_dir (each safe to share between runs and to delete)."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.root: Location = location(cache_dir)

    def embeddings(self, model_id: str) -> Location:
        return self.root / "embeddings" / _part(model_id)

    def label_texts(self, model_id: str, vocabulary_digest: str) -> Location:
        return self.root / "label_text" / f"{_part(model_id)}--{vocabulary_digest}.parquet"

    @property
    def llm_copy(self) -> Location:
        return self.root / "llm_copy"

    def pixel_color(self, algorithm: str) -> Location:
        return self.root / "pixel_color" / algorithm

    def color_features(self, version: str) -> Location:
        return self.root / "color_features" / version

    def thumbnails(self, sizes: tuple[int, ...]) -> Location:
        return self.root / "thumbnails" / ("jpeg-" + "-".join(str(s) for s in sorted(sizes)))

    @property
    def file_hashes(self) -> Location:
        return self.root / "file_hashes"


class OutputLayout:
    """OUT: the tables, the commit file written last, the run's settings for `similar`/`search`,
    and the folders of the report, the search index, the history, the Data Docs and the shop files."""

    COMMIT_FILE = "_SUCCESS.json"

    def __init__(self, out_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        self.out: Location = location(out_dir)
        self.cache = CacheLayout(cache_dir) if cache_dir is not None else None

    @property
    def catalog_csv(self) -> Location:
        return self.out / "catalog.csv"

    def catalog_csv_in(self, lang: str) -> Location:
        return self.out / f"catalog.{lang}.csv"

    @property
    def catalog_parquet(self) -> Location:
        return self.out / "catalog.parquet"

    @property
    def rejects_csv(self) -> Location:
        return self.out / "rejects.csv"

    @property
    def commit_file(self) -> Location:
        return self.out / self.COMMIT_FILE

    @property
    def run_config(self) -> Location:
        return self.out / "run_config.json"

    @property
    def report(self) -> Location:
        return self.out / "report"

    @property
    def search(self) -> Location:
        return self.out / "search"

    @property
    def history(self) -> Location:
        return self.out / "history"

    @property
    def history_runs(self) -> Location:
        return self.history / "runs.jsonl"

    @property
    def validations(self) -> Location:
        """GX validation results of every run, listed by the Data Docs."""
        return self.history / "validations"

    @property
    def data_docs(self) -> Location:
        return self.out / "data_docs"

    @property
    def exports(self) -> Location:
        return self.out / "exports"
