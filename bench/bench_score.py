"""Benchmark CSV scoring against a floor that reads and writes the same amount of CSV.

    .venv/bin/python bench/bench_score.py [--rows 100000] [--repeat 3] [--seed 20250101]

Generates ``--rows`` rows of ``study_id, q1..q56`` (valid codes, about 5 % blank cells) in a
temporary folder, then times, best of ``--repeat``:

  (a) the floor: ``csv.reader`` over every row of that file, and for each row one output line of
      its study_id and score cells, written in one piece (no scoring: the score cells are lines
      the product wrote for the first ``POOL_ROWS`` rows, taken in turn), so the floor reads
      every cell and writes as many bytes as the product does;
  (b) ``score_csv`` on it, extra columns allowed (and, separately, its first call, which also
      imports numpy and builds the scoring tables that later calls reuse);
  (c) the same floor as a whole process (``python -c FLOOR IN OUT POOL``: interpreter
      start-up, the csv module, reading and writing);
  (d) the ``pro-service score --allow-extra-columns`` console script as a whole process, as a
      user runs it (interpreter start-up, the settings and the instrument files read and
      checked, numpy imported for a file this big; no Flask and no app), alternating with (c);
      with the package's modules compiled, as an installed package has them, even where
      PYTHONDONTWRITEBYTECODE is set;
  (e) ``pro-service --help`` as a whole process, beside ``python -c pass``.

Earlier versions used a csv.reader -> csv.writer copy of the input as the floor. That wrote the
12 MB input again while the command writes about 42 MB of score text, and it paid csv.writer's
per-cell cost for 57 cells a row; it is still printed, as (a0) and (c0), for comparison.

Targets: (b) at most 2x (a), and (d) at most 2x (c). Each figure is the best of ``--repeat``,
with the spread (slowest / best) beside it. Not a test; pytest does not collect it.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pro_service.file_scoring import score_csv  # noqa: E402
from pro_service.instruments import load_instruments  # noqa: E402

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


#: Rows of real output the floor takes its score cells from, in turn.
POOL_ROWS = 1000

#: The floor, run in this process and (with ``python -c``) as a whole process: every row read
#: with csv.reader, and for each one a line of its study_id and a pool line of score cells.
FLOOR = """
import csv, sys
from itertools import cycle
def floor(source, target, pool):
    with open(pool, encoding="utf-8", newline="") as handle:
        header, *lines = handle.read().splitlines()
    with (
        open(source, encoding="utf-8-sig", newline="") as infile,
        open(target, "w", encoding="utf-8", newline="") as outfile,
    ):
        reader = csv.reader(infile)
        first = next(reader)
        outfile.write(f"{first[0]},{header}\\r\\n")
        outfile.writelines(f"{row[0]},{line}\\r\\n" for row, line in zip(reader, cycle(lines)))
if __name__ == "__main__":
    floor(sys.argv[1], sys.argv[2], sys.argv[3])
"""
#: The earlier floor: a csv.reader -> csv.writer copy of the input file.
ROUND_TRIP = """
import csv, sys
def round_trip(source, target):
    with (
        open(source, encoding="utf-8-sig", newline="") as infile,
        open(target, "w", encoding="utf-8", newline="") as outfile,
    ):
        writer = csv.writer(outfile)
        for row in csv.reader(infile):
            writer.writerow(row)
if __name__ == "__main__":
    round_trip(sys.argv[1], sys.argv[2])
"""
_namespace: dict[str, Any] = {"__name__": "bench_floor"}
exec(FLOOR, _namespace)  # noqa: S102 - our own constant code
exec(ROUND_TRIP, _namespace)  # noqa: S102 - our own constant code
floor: Callable[[Path, Path, Path], None] = _namespace["floor"]
round_trip: Callable[[Path, Path], None] = _namespace["round_trip"]


def make_pool(scored: Path, folder: Path) -> Path:
    """The score cells of the first POOL_ROWS rows of the product's output (no study_id)."""
    with scored.open(encoding="utf-8", newline="") as handle:
        lines = [line for _, line in zip(range(POOL_ROWS + 1), handle, strict=False)]
    pool = folder / "pool.csv"
    pool.write_text("".join(line.split(",", 1)[1] for line in lines), encoding="utf-8", newline="")
    return pool


def spread(times: list[float]) -> str:
    return f"best {min(times):7.3f} s, slowest {max(times):7.3f} s"


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

        # The first call also builds the scoring tables (kept per instrument afterwards).
        first = timed(
            lambda: score_csv(source, folder / "out.csv", registry, allow_extra_columns=True)
        )
        pool = make_pool(folder / "out.csv", folder)
        # (a0), (a) and (b) alternate, so that all see the same machine load; best of each.
        old_times: list[float] = []
        floor_times: list[float] = []
        score_times: list[float] = []
        for _ in range(args.repeat):
            old_times.append(timed(lambda: round_trip(source, folder / "old.csv")))
            floor_times.append(timed(lambda: floor(source, folder / "floor.csv", pool)))
            score_times.append(
                timed(
                    lambda: score_csv(
                        source, folder / "out.csv", registry, allow_extra_columns=True
                    )
                )
            )
        floor_mb = (folder / "floor.csv").stat().st_size / 1e6
        out_mb = (folder / "out.csv").stat().st_size / 1e6
        bare, scored = min(floor_times), min(score_times)
        print(f"output: floor {floor_mb:.1f} MB, score_csv {out_mb:.1f} MB")
        print(f"(a0) csv copy of the input (old floor): {spread(old_times)}")
        print(f"(a) floor, read + write : {spread(floor_times)}")
        print(f"(b) score_csv           : {spread(score_times)}   ratio b/a = {scored / bare:.2f}")
        print(f"    its first call      : {first:7.3f} s   ratio     = {first / bare:.2f}")

        script = Path(sys.executable).parent / "pro-service"
        command = str(script) if script.exists() else shutil.which("pro-service")
        if not command:
            print("(c)-(e): the pro-service console script is not installed, skipped")
            return 0
        # An installed service's instance folder: score keeps its schema passes there.
        (folder / "instance").mkdir()
        env = {**os.environ, "PRO_INSTANCE_DIR": str(folder / "instance")}
        # As installed, the package's modules are compiled once (pip does it at install time);
        # a machine that sets PYTHONDONTWRITEBYTECODE would compile them again on every run.
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        def run(argv: list[str]) -> Callable[[], object]:
            return lambda: subprocess.run(  # noqa: S603 - our own scripts, fixed arguments
                argv,
                check=True,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )

        old_process = run([sys.executable, "-c", ROUND_TRIP, str(source), str(folder / "old2.csv")])
        floor_process = run(
            [sys.executable, "-c", FLOOR, str(source), str(folder / "floor2.csv"), str(pool)]
        )
        cli_process = run(
            [command, "score", "--allow-extra-columns", str(source), "-o", str(folder / "c.csv")]
        )
        old_process_times: list[float] = []
        process_times: list[float] = []
        cli_times: list[float] = []
        try:
            for _ in range(args.repeat):
                old_process_times.append(timed(old_process))
                process_times.append(timed(floor_process))
                cli_times.append(timed(cli_process))
        except subprocess.CalledProcessError as exc:
            print(f"(c)/(d) failed: {exc.stderr.decode().strip()[:300]}")
            return 1
        bare_p, cli = min(process_times), min(cli_times)
        print(f"(c0) csv copy of the input, whole process: {spread(old_process_times)}")
        print(f"(c) floor, whole process           : {spread(process_times)}")
        print(
            f"(d) pro-service score, whole command: {spread(cli_times)}   ratio d/c = "
            f"{cli / bare_p:.2f} (slowest/slowest {max(cli_times) / max(process_times):.2f}; "
            f"d/c0 = {cli / min(old_process_times):.2f})"
        )

        help_times: list[float] = []
        pass_times: list[float] = []
        for _ in range(args.repeat):
            pass_times.append(timed(run([sys.executable, "-c", "pass"])))
            help_times.append(timed(run([command, "--help"])))
        print(f"(e) python -c pass       : {spread(pass_times)}")
        print(f"    pro-service --help   : {spread(help_times)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
