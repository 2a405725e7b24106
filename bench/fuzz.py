"""Fuzzing: every untrusted-input reader of reclaim, minutes per target, findings saved to replay.

Targets (defined in ``reclaim_fixtures.fuzz``, shared with the CI smoke test): ``image`` and
``video`` (``analyze_bytes``, as a scan decodes and hashes an item), ``archive`` (zip/tar
readers), ``telegram`` (the ``result.json`` parser), ``urllist`` (parsing only, never the
network) and ``verify-pack``. Each runs in its own child process under an address-space limit
(``--mem-gb``, default 3); an input running longer than ``--hang-seconds`` (default 5) is a hang:
the child is killed, the input saved, and a new child goes on for the time left. A
``ReclaimError`` is the expected clear-error path; any other exception, a hang or a dead child is
a finding, saved under ``bench/results/fuzz-findings/<target>/`` (git-ignored) for replay.

Prints, per target: inputs tried, unexpected exceptions (and how many distinct), hangs, crashes,
peak RSS of the child; then each distinct finding (count, type, the reclaim frame it escaped
from → where it was raised, message, saved input). Writes ``bench/results/fuzz.json``.
Goal: 0 unexpected / 0 hangs / 0 crashes, peak RSS under 2 GB.

Usage:
    python bench/fuzz.py [--minutes 10] [--targets image,video,...] [--engine atheris|mutate]
    python bench/fuzz.py --replay bench/results/fuzz-findings/image/exception-....bin --target image
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from reclaim_fixtures.fuzz import (
    DEFAULT_TARGETS,
    TARGETS,
    TargetResult,
    default_engine,
    iter_results_table,
    replay,
    run_target,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "fuzz.json"
FINDINGS = ROOT / "bench" / "results" / "fuzz-findings"


def _print_findings(res: TargetResult, limit: int) -> None:
    if not res.findings:
        return
    print(f"\n{res.target}: {len(res.findings)} distinct findings")
    for f in sorted(res.findings, key=lambda f: -f.count)[:limit]:
        where = f"{f.via} → {f.where}" if f.via not in ("-", f.where) else f.where
        try:
            shown = str(Path(f.file).relative_to(ROOT))
        except ValueError:
            shown = f.file
        print(f"  {f.count:>4}× {f.kind} {f.type} at {where}: {f.message[:110]}")
        print(f"        input: {shown}")
    if len(res.findings) > limit:
        print(f"  ... {len(res.findings) - limit} more in {RESULTS.relative_to(ROOT)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="per target (default 10)")
    ap.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="comma-separated")
    ap.add_argument("--engine", choices=["atheris", "mutate"], default=None)
    ap.add_argument("--hang-seconds", type=float, default=5.0)
    ap.add_argument("--mem-gb", type=float, default=3.0, help="RLIMIT_AS of each child")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--findings", type=Path, default=FINDINGS)
    ap.add_argument("--show", type=int, default=15, help="distinct findings listed per target")
    ap.add_argument("--replay", type=Path, help="run one saved input and print its traceback")
    ap.add_argument("--target", help="the target of --replay")
    args = ap.parse_args()

    if args.replay:
        if args.target not in TARGETS:
            ap.error(f"--replay needs --target, one of {', '.join(TARGETS)}")
        with tempfile.TemporaryDirectory(prefix="reclaim-fuzz-replay-") as tmp:
            text = replay(args.target, args.replay.read_bytes(), Path(tmp))
        print(text or "no finding: the input passes (or fails with a clear ReclaimError)")
        return 1 if text else 0

    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; known: {', '.join(DEFAULT_TARGETS)}")
    engine = args.engine or default_engine()
    seconds = args.minutes * 60
    print(
        f"fuzzing {', '.join(names)} for {args.minutes:g} min each, engine {engine}, hang > "
        f"{args.hang_seconds:g} s, memory limit {args.mem_gb:g} GB",
        flush=True,
    )
    results: list[TargetResult] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="reclaim-fuzz-") as tmp:
        for name in names:
            res = run_target(
                name,
                seconds,
                Path(tmp),
                args.findings / name,
                engine=engine,
                hang_s=args.hang_seconds,
                mem_bytes=int(args.mem_gb * 1024**3),
                seed=args.seed,
            )
            results.append(res)
            print(
                f"  {name}: {res.tried} inputs, {res.unexpected} unexpected, {res.hangs} hangs, "
                f"{res.crashes} crashes, peak RSS {res.peak_rss_mb:.0f} MB",
                flush=True,
            )
    print()
    for line in iter_results_table(results):
        print(line)
    for res in results:
        _print_findings(res, args.show)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "engine": engine,
        "minutes_per_target": args.minutes,
        "hang_seconds": args.hang_seconds,
        "memory_limit_gb": args.mem_gb,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "goal": "0 unexpected, 0 hangs, 0 crashes, peak RSS < 2048 MB per target",
        "targets": [r.as_dict() for r in results],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {args.out}")
    ok = all(r.clean and r.peak_rss_mb < 2048 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
