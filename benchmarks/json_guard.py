"""What the JSON guard costs, and what it saves, side by side in one run.

Cost: every JSON answer is now scanned for its nesting depth before ``json.loads``. Timed for a
status document (~3 KiB), a 100-run NCLUE page (~100 KiB) and an answer at the 4 MiB cap:
``json.loads`` alone vs :func:`airflow_task_runs.core.bounded_json.loads` (median of 15 runs each,
interleaved).

Saving: an OCI ``fetchOutput`` body nested 20,000 deep (~39 KiB), the review's case. Fresh child
interpreters parse it the old way (ijson, as the streamed reader did) and the new way (the
splitter refuses it past 64 levels); peak RSS (``VmHWM``) of each, median of 5, minus a child
that only imports.

    python benchmarks/json_guard.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from airflow_task_runs.core import bounded_json

ROUNDS = 15
CHILD_ROUNDS = 5
DEPTH = 20_000

CHILD = """
import sys
mode = sys.argv[1]
body = b'{"data": ' + b"[" * int(sys.argv[2]) + b"]" * int(sys.argv[2]) + b"}"
if mode == "ijson":
    import ijson
    try:
        list(ijson.items(body, ""))
    except Exception:
        pass
elif mode == "guarded":
    from airflow_task_runs.oci.output_stream import MalformedJson, parse
    try:
        parse(iter([body[i : i + 65536] for i in range(0, len(body), 65536)]))
    except MalformedJson:
        pass
else:
    import ijson
    from airflow_task_runs.oci.output_stream import parse
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]) // 1024)
"""


def _documents() -> dict[str, bytes]:
    run = {
        "run_id": "r-1",
        "status": "in_progress",
        "fail_message": None,
        "result_bucket": "b",
        "result_file_path": "results/r-1/out.csv",
        "parameters": {f"p{i}": {"value": i, "tags": ["a", "b"]} for i in range(40)},
    }
    page = {"total": 100, "runs": [run] * 100}
    big = {"runs": [run] * 1200}
    return {
        f"status ({len(json.dumps(run)) // 1024} KiB)": json.dumps(run).encode(),
        f"list page ({len(json.dumps(page)) // 1024} KiB)": json.dumps(page).encode(),
        f"near the cap ({len(json.dumps(big)) // 1024 // 1024} MiB)": json.dumps(big).encode(),
    }


def _median_seconds(fn: object, data: bytes) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        fn(data)  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _child_mb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(DEPTH)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def main() -> None:
    print("| answer | json.loads | guarded loads | ratio |")
    print("|---|---|---|---|")
    for name, data in _documents().items():
        plain = _median_seconds(json.loads, data)
        guarded = _median_seconds(bounded_json.loads, data)
        print(f"| {name} | {plain * 1000:.2f} ms | {guarded * 1000:.2f} ms | {guarded / plain:.2f}x |")

    samples: dict[str, list[int]] = {"baseline": [], "ijson": [], "guarded": []}
    for _ in range(CHILD_ROUNDS):
        for mode in samples:
            samples[mode].append(_child_mb(mode))
    base = statistics.median(samples["baseline"])
    print(f"\nfetchOutput body nested {DEPTH} deep: peak RSS over an importing child (median of {CHILD_ROUNDS})")
    for mode in ("ijson", "guarded"):
        print(f"- {mode}: +{statistics.median(samples[mode]) - base:.0f} MiB")


if __name__ == "__main__":
    main()
