"""The deployment entrypoint (prefect.yaml: flows/catalog.py:catalog_flow); the flow lives in
catalog_intel/orchestration/flow.py."""

from catalog_intel.orchestration.flow import catalog_flow

__all__ = ["catalog_flow"]
