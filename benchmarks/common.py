"""Shared by the benchmarks: machine facts and writing results as JSON."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # where the benchmarks run `fmnist-search` from
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO))


def machine() -> dict:
    from fmnist_search import training
    from fmnist_search.versions import versions

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = training.cpu_flags()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "bf16_flags": sorted(f for f in flags if "bf16" in f or f.startswith("amx")),
        "platform": platform.platform(),
        "versions": versions(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **payload}, indent=2))
    print(f"wrote {path}")
    return path
