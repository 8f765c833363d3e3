"""The one progress bar of every long step (tqdm; quiet when the output is not a terminal is tqdm's own rule)."""

from __future__ import annotations


def progress_bar(total: int | None, desc: str, unit: str = "img", **options):
    """A tqdm bar that leaves no line behind; `options` go to tqdm (e.g. unit_scale for bytes)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, mininterval=1.0, dynamic_ncols=True, **options)
