import os
import signal
import subprocess
import sys
import time

import pytest

from catalog_intel.errors import OutputLocked
from catalog_intel.io.runlock import RunLock

HOLD = "import sys, time; from pathlib import Path; from catalog_intel.io.runlock import RunLock\n" \
       "with RunLock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)\n"


def test_second_run_on_the_same_folder_is_refused(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(OutputLocked, match="another catalog-intel run is writing to"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):  # released on exit
        pass


def test_lock_of_a_killed_run_does_not_block(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLocked):
            with RunLock(tmp_path):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        assert (tmp_path / ".catalog-intel.lock").exists()  # the stale file is still there...
        deadline = time.monotonic() + 5
        with RunLock(tmp_path):  # ...but does not block the next run
            assert time.monotonic() < deadline
    finally:
        holder.kill()
