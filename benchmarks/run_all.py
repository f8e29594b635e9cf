"""Run every benchmark in turn (about an hour on a 2-core CPU); results in results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in ("bench_epoch.py", "bench_overhead.py", "bench_memory.py",
               "bench_time_to_target.py", "bench_augment.py"):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
