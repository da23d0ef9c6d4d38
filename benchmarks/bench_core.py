"""Time and memory of segmentkit's core path on synthetic order lines.

Stages, each measured in a fresh Python process per (size, stage) so that the
peak resident set size (RSS) belongs to that stage alone:

* ``numpy_bound`` – the reference point: recency, frequency and monetary per
  customer with nothing but ``pd.factorize`` on the raw ids, ``np.bincount`` and
  ``np.maximum.at`` (same definitions as segmentkit: returns excluded from the last
  purchase and from the order count, monetary net of returns);
* ``validate`` – ``Transactions.from_frame`` on the raw frame;
* ``features`` – ``extract_features`` on the validated transactions;
* ``segment`` – ``RFMSegmenter().fit_predict`` on the features;
* ``pipeline`` – the three above, from the raw frame to the segmentation.

In each child the input is generated (``synthetic.generate_transactions``),
everything the stage does not take as input is dropped, and then, per repeat:
the current RSS is read, the peak-RSS counter is reset (``/proc/self/clear_refs``),
the stage runs, and ``getrusage(RUSAGE_SELF).ru_maxrss`` gives its peak. Reported:
median seconds over the repeats, the absolute peak RSS (interpreter, libraries and
the stage's input included) and the extra memory the stage needed (peak minus the
RSS just before it). If the peak counter cannot be reset, the absolute peak also
covers data generation and the row is flagged.

Usage (from the repository root)::

    python benchmarks/bench_core.py --rows 1000000 10000000 --repeat 3
    python benchmarks/bench_core.py --rows 10000000 --stages pipeline --merge  # add/replace
    python benchmarks/bench_core.py --rows 1000000 --ids str   # pandas 3 string columns
    python benchmarks/bench_core.py --rows 1000000 --profile pipeline   # cProfile, no JSON

Results go to ``benchmarks/results/core.json`` (``--out``) and a Markdown table
is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "core.json"
STAGES = ("numpy_bound", "validate", "features", "segment", "pipeline")
STAGE_LABELS = {
    "numpy_bound": "numpy R/F/M bound",
    "validate": "Transactions.from_frame",
    "features": "extract_features",
    "segment": "RFMSegmenter.fit_predict",
    "pipeline": "whole pipeline",
}
GIB = 2**30
_RESULT_PREFIX = "BENCH_RESULT "


# --------------------------------------------------------------------------- child


def source_fingerprint() -> str:
    """Hash of the segmentkit sources: the code under test may differ from any commit."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "segmentkit").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def loaded_sources() -> dict[str, str]:
    """Hash of each segmentkit source file this process has imported (what ran)."""
    src = (REPO / "src").resolve()
    hashes = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        path = Path(path).resolve()
        if path.is_relative_to(src) and path.exists():
            key = path.relative_to(src).as_posix()
            hashes[key] = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return dict(sorted(hashes.items()))


def _current_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak_rss() -> int:
    import resource

    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> bool:
    """Reset the peak-RSS counter (Linux >= 4.0); ru_maxrss then restarts from now."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def rfm_numpy(raw: Any) -> dict[str, Any]:
    """R/F/M per customer with numpy only: the lower bound the library is compared to."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(raw["customer_id"])
    n = len(uniques)
    ns = raw["timestamp"].to_numpy().view(np.int64)
    amount = raw["amount"].to_numpy()
    sale = amount >= 0
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, codes[sale], ns[sale])
    order_codes, orders = pd.factorize(raw["order_id"])
    order_has_sale = np.zeros(len(orders), dtype=bool)
    order_has_sale[order_codes[sale]] = True
    order_customer = np.empty(len(orders), dtype=np.int64)
    order_customer[order_codes] = codes
    frequency = np.bincount(order_customer[order_has_sale], minlength=n)
    monetary = np.bincount(codes, weights=amount, minlength=n)
    recency_days = np.where(frequency > 0, (ns.max() - last) / 86_400e9, np.nan)
    return {
        "customer_id": uniques,
        "recency_days": recency_days,
        "frequency": frequency,
        "monetary": monetary,
    }


def _agrees(bound: dict[str, Any], features: Any) -> bool:
    """Whether the numpy bound computed the same R/F/M as extract_features."""
    import numpy as np

    frame = features.frame.reindex(np.asarray(bound["customer_id"], dtype=object))
    return bool(
        np.array_equal(frame["frequency"].to_numpy(), bound["frequency"])
        and np.allclose(frame["monetary"].to_numpy(), bound["monetary"], rtol=1e-9, atol=1e-6)
        and np.allclose(
            frame["recency_days"].to_numpy(), bound["recency_days"], atol=1e-9, equal_nan=True
        )
    )


def _prepare(stage: str, rows: int, seed: int, ids: str) -> tuple[Any, dict[str, Any], Any]:
    """Generate the data, build the stage's input and a zero-argument callable for it.

    Returns the callable, facts about the input, and the raw frame when the stage
    keeps it as its input (else ``None``).
    """
    sys.path.insert(0, str(HERE))
    from synthetic import generate_transactions

    import segmentkit as sk

    importlib.import_module("segmentkit.engines")  # scikit-learn loads here, not when timed
    info: dict[str, Any] = {}
    started = time.perf_counter()
    raw = generate_transactions(rows, seed=seed, ids=ids)
    info["generate_seconds"] = time.perf_counter() - started
    info["raw_frame_gib"] = float(raw.memory_usage(deep=True).sum()) / GIB

    if stage == "numpy_bound":
        return functools.partial(rfm_numpy, raw), info, raw
    if stage == "validate":
        return functools.partial(_validate, raw), info, raw
    if stage == "pipeline":
        return functools.partial(_pipeline, raw), info, raw
    tx = _validate(raw)
    del raw
    if stage == "features":
        return functools.partial(sk.extract_features, tx), info, None
    features = sk.extract_features(tx)
    del tx
    return functools.partial(_segment, features), info, None


def _validate(raw: Any) -> Any:
    from synthetic import COLUMN_MAPPING

    import segmentkit as sk

    return sk.Transactions.from_frame(raw, **COLUMN_MAPPING)


def _segment(features: Any) -> Any:
    import segmentkit as sk

    return sk.RFMSegmenter().fit_predict(features)


def _pipeline(raw: Any) -> Any:
    import segmentkit as sk

    tx = _validate(raw)
    features = sk.extract_features(tx)
    del tx
    return _segment(features)


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so RSS is what is in use."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    if "pyarrow" in sys.modules:
        # Arrow's allocator (mimalloc or jemalloc) keeps freed pages, e.g. the ~0.3 GiB
        # of a Parquet read at 10M rows, which would count in every stage's peak.
        with contextlib.suppress(Exception):
            sys.modules["pyarrow"].default_memory_pool().release_unused()


def run_child(
    stage: str, rows: int, repeat: int, seed: int, ids: str, check: bool
) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    import segmentkit as sk

    run, info, raw = _prepare(stage, rows, seed, ids)
    sources_before = loaded_sources()
    # Other processes on the machine skew timings: keep the 1-minute load average.
    load_before = os.getloadavg()[0]
    seconds: list[float] = []
    peaks: list[int] = []
    extras: list[int] = []
    reset_ok = True
    for _ in range(repeat):
        _release_free_memory()
        before = _current_rss()
        reset_ok &= _reset_peak()
        started = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - started)
        peak = _peak_rss()
        peaks.append(peak)
        extras.append(peak - before)
        del result
    if stage == "numpy_bound" and check:
        # After the measurements, so it costs nothing to the figures.
        info["agrees_with_segmentkit"] = _agrees(rfm_numpy(raw), _library_features(raw))
    sources_after = loaded_sources()
    info.update(
        stage=stage,
        rows=rows,
        ids=ids,
        repeat=repeat,
        seed=seed,
        load_average_1min=[load_before, os.getloadavg()[0]],
        src_files=sources_after,
        src_changed_during_run=any(
            sources_after.get(name) != digest for name, digest in sources_before.items()
        ),
        seconds=seconds,
        seconds_median=statistics.median(seconds),
        seconds_min=min(seconds),
        peak_rss_gib=max(peaks) / GIB,
        extra_rss_gib=max(extras) / GIB,
        peak_reset=reset_ok,
        versions={
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": _installed_version("pyarrow"),
            "scikit-learn": _installed_version("scikit-learn"),
            "segmentkit": sk.__version__,
        },
    )
    return info


def _installed_version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _library_features(raw: Any) -> Any:
    import segmentkit as sk

    return sk.extract_features(_validate(raw))


def profile_stage(stage: str, rows: int, seed: int, ids: str, top: int) -> None:
    """Run one stage once under cProfile and print the top functions (no JSON written)."""
    import cProfile
    import pstats

    run, _, _ = _prepare(stage, rows, seed, ids)
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    print(f"# cProfile of {STAGE_LABELS[stage]} on {rows:,} rows ({ids} ids, seed {seed})")
    print("## by own time")
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(top)
    print("## segmentkit functions by cumulative time")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(r"src/segmentkit/", top)
    print("## who calls the functions with the most own time")
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_callers(top // 3)


# --------------------------------------------------------------------------- parent


def _spawn(stage: str, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        stage,
        "--rows",
        str(rows),
        "--repeat",
        str(args.repeat),
        "--seed",
        str(args.seed),
        "--ids",
        args.ids,
    ]
    if args.no_check:
        command.append("--no-check")
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {
            "stage": stage,
            "rows": rows,
            "ids": args.ids,
            "error": f"timed out ({args.timeout} s)",
        }
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        error = f"exit code {done.returncode}: {last}"
        return {"stage": stage, "rows": rows, "ids": args.ids, "error": error}
    result = json.loads(lines[-1][len(_RESULT_PREFIX) :])
    result["child_wall_seconds"] = wall
    return result


def _machine() -> dict[str, Any]:
    def command_output(*command: str) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout
        except OSError:
            return ""

    mem_total = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        mem_total = int(meminfo.readline().split()[1]) * 1024
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), "")
    return {
        "nproc": command_output("nproc").strip() or str(os.cpu_count()),
        "cpu_model": model,
        "memory_gib": round(mem_total / GIB, 1),
        "free_g": command_output("free", "-g").rstrip(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "src_modified": bool(git("status", "--porcelain", "src")),
        "src_sha256": source_fingerprint(),
    }


def _changed_sources(results: list[dict[str, Any]]) -> list[str]:
    """Source files that did not hold the same content in every run (empty = consistent)."""
    seen: dict[str, set[str]] = {}
    changed = set()
    for r in results:
        for name, digest in r.get("src_files", {}).items():
            seen.setdefault(name, set()).add(digest)
        if r.get("src_changed_during_run"):
            changed.add(f"(during the {r['rows']:,}-row {r['stage']} run)")
    changed |= {name for name, digests in seen.items() if len(digests) > 1}
    return sorted(changed)


def _size_key(result: dict[str, Any]) -> tuple[int, str]:
    return result["rows"], result.get("ids", "object")


def _add_ratios(results: list[dict[str, Any]]) -> None:
    bounds = {
        _size_key(r): r for r in results if r.get("stage") == "numpy_bound" and "error" not in r
    }
    for r in results:
        bound = bounds.get(_size_key(r))
        if bound is None or "error" in r:
            continue
        r["time_vs_bound"] = r["seconds_median"] / bound["seconds_median"]
        r["extra_rss_vs_bound"] = r["extra_rss_gib"] / max(bound["extra_rss_gib"], 1e-9)


def markdown_table(results: list[dict[str, Any]]) -> str:
    header = (
        "| rows | customers | ids | stage | seconds (median) | × bound (time) "
        "| peak RSS (GiB) | extra RSS (GiB) | × bound (extra RSS) |\n"
        "|---:|---:|---|---|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    for r in sorted(results, key=lambda r: (*_size_key(r), STAGES.index(r["stage"]))):
        label = STAGE_LABELS[r["stage"]]
        customers = f"{round(r['rows'] / 6.7):,}"
        head = f"| {r['rows']:,} | {customers} | {r.get('ids', 'object')} | {label}"
        if "error" in r:
            error = r["error"].replace("|", "/")
            lines.append(f"{head} | failed: {error} |||||")
            continue
        flag = "" if r.get("peak_reset", True) else " †"
        lines.append(
            f"{head} | {r['seconds_median']:.2f} "
            f"| {r.get('time_vs_bound', float('nan')):.1f} | {r['peak_rss_gib']:.2f}{flag} "
            f"| {r['extra_rss_gib']:.2f} | {r.get('extra_rss_vs_bound', float('nan')):.1f} |"
        )
    return "\n".join(lines)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time and peak memory of segmentkit's core stages on synthetic data."
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ids",
        choices=["object", "str", "int"],
        default="object",
        help="dtype of the id columns (see synthetic.generate_transactions)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the results already in --out, replacing those run again",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip checking that the numpy bound computes the same R/F/M as segmentkit",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    parser.add_argument(
        "--profile", choices=STAGES, help="cProfile one stage in this process, print, exit"
    )
    parser.add_argument("--top", type=int, default=25, help="rows of the --profile listing")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    if args.child:
        result = run_child(
            args.child, args.rows[0], args.repeat, args.seed, args.ids, not args.no_check
        )
        print(_RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    if args.profile:
        profile_stage(args.profile, args.rows[0], args.seed, args.ids, args.top)
        return 0

    results: list[dict[str, Any]] = []
    if args.merge and args.out.exists():
        previous = json.loads(args.out.read_text(encoding="utf-8"))
        rerun = {(rows, args.ids, stage) for rows in args.rows for stage in args.stages}
        results = [
            r for r in previous.get("results", []) if (*_size_key(r), r["stage"]) not in rerun
        ]
    for rows in args.rows:
        for stage in args.stages:
            print(f"{rows:>12,} rows  {args.ids:<6} {STAGE_LABELS[stage]:<26}", end="", flush=True)
            result = _spawn(stage, rows, args)
            results.append(result)
            if "error" in result:
                print(f"  FAILED: {result['error']}", flush=True)
            else:
                print(
                    f"  {result['seconds_median']:8.2f} s  peak {result['peak_rss_gib']:5.2f} GiB"
                    f"  extra {result['extra_rss_gib']:5.2f} GiB",
                    flush=True,
                )
    _add_ratios(results)
    changed = _changed_sources(results)
    if changed:
        print(f"WARNING: segmentkit sources changed between runs: {changed}", file=sys.stderr)
    versions = next((r["versions"] for r in results if "versions" in r), {})
    document = {
        "benchmark": "core",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", "benchmarks/bench_core.py", *(argv or sys.argv[1:])]),
        "machine": _machine(),
        "versions": versions,
        "git": _git_state(),
        "config": {"repeat": args.repeat, "seed": args.seed},
        "src_files_changed_between_runs": changed,
        "results": results,
    }
    _write_json(args.out, document)
    print()
    print(markdown_table(results))
    print(f"\nwritten to {args.out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
