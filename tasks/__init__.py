"""Thin Prefect tasks around the pure pipeline steps in catalog_intel.

Each task works on one shard of images (never one image), takes and returns
small serialisable things (configs, paths, modest polars frames) and keeps
heavy data in the content-addressed stores, so the same tasks can later run
on Dask/Ray workers."""
