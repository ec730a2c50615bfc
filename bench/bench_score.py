"""Benchmark CSV scoring against a bare CSV round trip of the same file.

    .venv/bin/python bench/bench_score.py [--rows 100000] [--repeat 3] [--seed 20250101]

Generates ``--rows`` rows of ``study_id, q1..q56`` (valid codes, about 5 % blank cells) in a
temporary folder, then times, best of ``--repeat``:

  (a) a bare round trip: csv.reader -> csv.writer of every row of that file;
  (b) ``score_csv`` on it (and, separately, its first call, which also builds the scoring
      tables that later calls reuse);
  (c) the ``pro-service score`` console script as a subprocess, if it is installed
      (this includes interpreter and app start-up).

The target is (b) at most 2x (a). Not a test; pytest does not collect it.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pro_service.instruments import load_instruments, score_csv  # noqa: E402

BLANK_RATE = 0.05


def generate(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    highs = [7 if n in (29, 30) else 4 for n in range(1, 57)]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_id", *(f"q{n}" for n in range(1, 57))])
        for r in range(rows):
            writer.writerow(
                [
                    f"SP-{r:06d}",
                    *(
                        "" if rng.random() < BLANK_RATE else str(rng.randint(1, high))
                        for high in highs
                    ),
                ]
            )


def round_trip(source: Path, target: Path) -> None:
    with (
        source.open(encoding="utf-8-sig", newline="") as infile,
        target.open("w", encoding="utf-8", newline="") as outfile,
    ):
        writer = csv.writer(outfile)
        for row in csv.reader(infile):
            writer.writerow(row)


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20250101)
    args = parser.parse_args()

    registry = load_instruments(ROOT / "questionnaires")
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        folder = Path(tmp)
        source = folder / "answers.csv"
        generate(source, args.rows, args.seed)
        size_mb = source.stat().st_size / 1e6
        print(f"{args.rows} rows x 57 columns, {size_mb:.1f} MB, best of {args.repeat}")

        # (a) and (b) alternate, so that both see the same machine load; best of each.
        bare_times: list[float] = []
        score_times: list[float] = []
        for _ in range(args.repeat):
            bare_times.append(timed(lambda: round_trip(source, folder / "bare.csv")))
            score_times.append(timed(lambda: score_csv(source, folder / "out.csv", registry)))
        bare, scored = min(bare_times), min(score_times)
        # The first call also built the scoring tables (kept per instrument afterwards).
        first = score_times[0]
        print(f"(a) bare csv round trip : {bare:7.3f} s")
        print(f"(b) score_csv           : {scored:7.3f} s   ratio b/a = {scored / bare:.2f}")
        print(f"    its first call      : {first:7.3f} s   ratio     = {first / bare:.2f}")

        script = Path(sys.executable).parent / "pro-service"
        command = str(script) if script.exists() else shutil.which("pro-service")
        if command:
            out = folder / "cli.csv"
            env = {**os.environ, "PRO_INSTANCE_DIR": str(folder / "instance")}

            def run_cli() -> None:
                subprocess.run(  # noqa: S603 - our own console script, fixed arguments
                    [command, "score", str(source), "-o", str(out)],
                    check=True,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )

            try:
                cli = min(timed(run_cli) for _ in range(args.repeat))
            except subprocess.CalledProcessError as exc:
                print(f"(c) pro-service score   : failed: {exc.stderr.decode().strip()[:300]}")
            else:
                print(f"(c) pro-service score   : {cli:7.3f} s   ratio c/a = {cli / bare:.2f}")
        else:
            print("(c) pro-service score   : console script not installed, skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
