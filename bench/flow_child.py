"""`catalog-intel <args>` in this process, then its peak RSS to $BENCH_RUSAGE_OUT (JSON).

Used by bench/run.py to run the real CLI in a child process and learn the peak RSS
of the CLI process itself (self) and of the largest process it started and reaped
(children: decode workers, Prefect's temporary server)."""

import atexit
import json
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _dump() -> None:  # registered first, so it runs last: after Prefect stops its server
    out = os.environ.get("BENCH_RUSAGE_OUT")
    if out:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        Path(out).write_text(json.dumps({"self_maxrss_kb": me.ru_maxrss, "children_maxrss_kb": kids.ru_maxrss}))


atexit.register(_dump)

from catalog_intel.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
