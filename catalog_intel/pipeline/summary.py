"""Run accounting: inputs = rows + rejects + skipped (dot files), embeddings and LLM calls made or cached."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import polars as pl

from catalog_intel.errors import RunFailed
from catalog_intel.pipeline.assemble import abstention_counts
from catalog_intel.pipeline.facts import completeness, unmapped_facts
from catalog_intel.settings import Config


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def process_started() -> float:
    """Wall clock (time.time) at which this process started."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - no psutil, or no access: the import of this module is close enough
        return _IMPORTED


_IMPORTED = time.time()


@dataclass
class RunSummary:
    inputs: int
    rows: int = 0
    rejects: int = 0
    skipped: int = 0
    embeddings_computed: int = 0
    embeddings_cached: int = 0
    llm_calls: int = 0
    llm_cached: int = 0
    llm_failed: int = 0
    llm_retries: int = 0
    llm_schema_fallbacks: int = 0
    llm_completion_tokens: int = 0  # generated, every answer
    llm_described: int = 0  # attribute sets the LLM was asked about (not cached)
    llm_seconds: float = 0.0  # in the copy tasks, summed over batches
    llm_sentences: int = 0  # prose sentences of fresh copy (description, style summary)
    llm_stock_sentences: int = 0  # ... with a stock phrase (grounding.phrases)
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)  # task name -> seconds, summed over shards
    abstentions: dict = field(default_factory=dict)
    completeness: dict = field(default_factory=dict)  # attribute -> share known in the input / output
    facts_unmapped: dict = field(default_factory=dict)  # attribute -> supplier value -> count
    llm_notes: list = field(default_factory=list)  # e.g. response_format fallback
    export_warnings: list = field(default_factory=list)  # shop values nobody supplied, once per config key
    validation: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    task_runner: str = "local"
    workers: dict = field(default_factory=dict)  # worker -> shard numbers it ran
    alerts: list = field(default_factory=list)  # sudden changes since the previous run (history.py)
    cpu_ms_per_image: dict = field(default_factory=dict)  # stage -> CPU ms per decoded image (image_feed)
    fixed_s: dict = field(default_factory=dict)  # before the first shard started, after the last ended
    shards_span: tuple | None = None  # wall clock (time.time) of the first shard's start, the last's end

    def count_embeddings(self, status: pl.DataFrame | None) -> None:
        if status is not None:
            self.embeddings_computed += int((status["status"] == "computed").sum())
            self.embeddings_cached += int((status["status"] == "cached").sum())

    def count_cpu(self, cpu: dict, images: int) -> None:
        """CPU per decoded image of each stage; `outside` = decode + color + thumbnails (issue #21's budget)."""
        if images:
            per = {stage: round(1000 * seconds / images, 2) for stage, seconds in cpu.items()}
            per["outside"] = round(sum(per.get(s, 0.0) for s in ("decode", "color", "thumbnails")), 2)
            self.cpu_ms_per_image = per

    def time_fixed(self, now: float | None = None) -> None:
        """The fixed costs: from the process's start to the first shard, and from the last shard to now."""
        if self.shards_span and None not in self.shards_span:
            first, last = self.shards_span
            self.fixed_s = {"before_first_shard": round(first - process_started(), 2),
                            "after_last_shard": round((now or time.time()) - last, 2)}

    def count_llm(self, counts: dict) -> None:
        for key, value in counts.items():
            setattr(self, key, getattr(self, key) + int(value))

    def finish(self, **values) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    def as_dict(self) -> dict:
        return asdict(self)

    def one_line(self) -> str:
        line = (
            f"catalog-intel: {self.inputs} inputs = {self.rows} rows + {self.rejects} rejects + {self.skipped} skipped | "
            f"embeddings {self.embeddings_computed} computed, {self.embeddings_cached} cached | "
            f"LLM {self.llm_calls} calls, {self.llm_cached} cached, {self.llm_failed} failed, {self.llm_retries} retries | "
            f"{self.seconds:.1f} s" + (f" ({self.phase_line()})" if self.phases else "") + f" | {self.runner_line()}"
        )
        extra = [self.copy_cost_line()] if self.llm_described else []
        extra += [self.cpu_line()] if self.cpu_ms_per_image else []
        extra += [f"fixed costs: before the first shard {self.fixed_s['before_first_shard']:.1f} s, after the last "
                  f"{self.fixed_s['after_last_shard']:.1f} s"] if self.fixed_s else []
        extra += [f"completeness in -> out: {self._completeness_text()}"] if self._has_facts() else []
        extra += [f"facts not in the vocabulary (kept as free facts): {self.facts_unmapped}"] if self.facts_unmapped else []
        return "\n".join([line, *[f"sudden change: {a}" for a in self.alerts], *extra, *self.notes()])

    def cpu_line(self) -> str:
        return "CPU per image: " + ", ".join(f"{stage} {ms:.2f} ms" for stage, ms in self.cpu_ms_per_image.items())

    def copy_cost_line(self) -> str:
        n = self.llm_described
        return (f"copy per product: {self.llm_completion_tokens / n:.0f} generated tokens, {self.llm_retries / n:.2f} "
                f"retries, {self.llm_seconds / n:.1f} s | stock phrases in {self.llm_stock_sentences} of "
                f"{self.llm_sentences} sentences")

    def notes(self) -> list[str]:
        fallback = ["the LLM server refused response_format json_schema: copy was asked for without it for the rest "
                    "of the run (the prompt asks for the JSON, pydantic validates it)"] if self.llm_schema_fallbacks else []
        return fallback + list(self.llm_notes) + list(self.export_warnings)

    def _has_facts(self) -> bool:
        return any((v.get("input") or 0) > 0 for v in self.completeness.values())

    def _completeness_text(self) -> str:
        return ", ".join(f"{a} {_pct(v['input'])} -> {_pct(v['output'])}" for a, v in self.completeness.items())

    def _completeness_lines(self) -> list[str]:
        if not self.completeness:
            return []
        lines = ["", "Completeness (share of products with a known value):", "",
                 "| attribute | input (facts) | output |", "|---|---|---|"]
        for a, v in self.completeness.items():
            lines.append(f"| {a} | {_pct(v['input'])} | {_pct(v['output'])} |")
        if self.facts_unmapped:
            lines += ["", "Supplier values outside the vocabulary (kept as free facts for the copy): "
                      + "; ".join(f"{a}: " + ", ".join(f"{k} ({n})" for k, n in vals.items())
                                  for a, vals in self.facts_unmapped.items())]
        return lines

    def runner_line(self) -> str:
        if not self.task_runner.startswith("dask"):
            return self.task_runner
        shards = ", ".join(f"{w}: {len(s)} shards" for w, s in sorted(self.workers.items()))
        return f"{self.task_runner}: {len(self.workers)} workers ({shards})"

    def phase_line(self) -> str:
        return ", ".join(f"{name} {secs:.1f} s" for name, secs in self.phases.items())

    def markdown(self) -> str:
        lines = [
            "# catalog-intel run", "",
            *[f"**Sudden change:** {a}  " for a in self.alerts], *([""] if self.alerts else []),
            "| | |", "|---|---|",
            f"| inputs | {self.inputs} |", f"| rows written | {self.rows} |", f"| rejects | {self.rejects} |",
            f"| skipped (dot files) | {self.skipped} |",
            f"| embeddings computed / cached | {self.embeddings_computed} / {self.embeddings_cached} |",
            f"| LLM calls / cached / failed / retries | {self.llm_calls} / {self.llm_cached} / {self.llm_failed} / {self.llm_retries} |",
            *([f"| {self.copy_cost_line().replace(' | ', '; ').replace(': ', ' | ', 1)} |"] if self.llm_described else []),
            f"| data-quality checks passed | {self.validation.get('successful_expectations', 0)} of {self.validation.get('evaluated_expectations', 0)} |",
            *self._search_lines(),
            f"| task runner | {self.runner_line()} |",
            f"| wall time | {self.seconds:.1f} s |",
            *([f"| time per phase | {self.phase_line()} |"] if self.phases else []), "",
            "Abstentions (`unknown`) per attribute: " + ", ".join(f"{k} {v}" for k, v in self.abstentions.items()),
            *self._completeness_lines(), *[f"\nNote: {note}" for note in self.notes()], "",
            "Outputs: " + ", ".join(f"`{p}`" for p in self.outputs.values()),
        ]
        return "\n".join(lines)

    def _search_lines(self) -> list[str]:
        if not self.search:
            return []
        s = self.search
        return [
            f"| search index | {s.get('kind')}, {s.get('size', 0)} distinct images, {s.get('added', 0)} added"
            f"{' (rebuilt)' if s.get('rebuilt') else ''} |",
            f"| product groups / exact duplicates | {s.get('groups', 0)} ({s.get('grouped_images', 0)} images) / "
            f"{s.get('exact_duplicates', 0)} |",
        ]

    def raise_if_too_many_rejects(self, max_share: float) -> None:
        considered = self.inputs - self.skipped
        share = self.rejects / considered if considered else 0.0
        if share > max_share:
            raise RunFailed(
                f"{self.rejects} of {self.inputs} inputs rejected ({share:.0%}), over run.max_reject_share={max_share:.0%}; "
                "outputs were written, see rejects.csv for the reasons"
            )


def summarise(inventory: pl.DataFrame, rejected_at_ingest: pl.DataFrame, skipped: list[str],
              facts_inventory: pl.DataFrame, enriched, llm_counts: dict, final: pl.DataFrame, rejects: pl.DataFrame,
              validation: dict, search: dict, outputs: dict, export_warnings: list[str], settings: Config, *,
              task_runner: str, seconds: float, phases: dict) -> RunSummary:
    """The run's accounting from what its steps returned (`enriched`: the shards reduced)."""
    summary = RunSummary(inputs=inventory.height + rejected_at_ingest.height + len(skipped), skipped=len(skipped),
                         **llm_counts, task_runner=task_runner, workers=enriched.shards_by_worker,
                         export_warnings=export_warnings, shards_span=(enriched.first_started, enriched.last_ended))
    summary.count_embeddings(enriched.status)
    summary.count_cpu(enriched.cpu, enriched.images_decoded)
    summary.finish(rows=final.height, rejects=rejects.height, abstentions=abstention_counts(final),
                   validation=validation, search=search, outputs=outputs, seconds=seconds, phases=phases,
                   completeness=completeness(facts_inventory, final, settings),
                   facts_unmapped=unmapped_facts(facts_inventory, settings))
    return summary
