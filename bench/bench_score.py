"""Benchmark CSV scoring against a bare CSV round trip of the same file.

    .venv/bin/python bench/bench_score.py [--rows 100000] [--repeat 3] [--seed 20250101]

Generates ``--rows`` rows of ``study_id, q1..q56`` (valid codes, about 5 % blank cells) in a
temporary folder, then times, best of ``--repeat``:

  (a) a bare round trip: csv.reader -> csv.writer of every row of that file;
  (b) ``score_csv`` on it, extra columns allowed (and, separately, its first call, which also
      builds the scoring
      tables that later calls reuse);
  (c) the same bare round trip as a whole process (``python -c ROUND_TRIP IN OUT``:
      interpreter start-up, the csv module, reading and writing);
  (d) the ``pro-service score --allow-extra-columns`` console script as a whole process, as a
      user runs it (interpreter and app start-up included), alternating with (c);
  (e) ``pro-service --help`` as a whole process, beside ``python -c pass``.

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


#: The bare round trip, run in this process and (with ``python -c``) as a whole process.
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
_namespace: dict[str, Any] = {"__name__": "bench_round_trip"}
exec(ROUND_TRIP, _namespace)  # noqa: S102 - our own constant code
round_trip: Callable[[Path, Path], None] = _namespace["round_trip"]


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

        # (a) and (b) alternate, so that both see the same machine load; best of each.
        bare_times: list[float] = []
        score_times: list[float] = []
        for _ in range(args.repeat):
            bare_times.append(timed(lambda: round_trip(source, folder / "bare.csv")))
            score_times.append(
                timed(
                    lambda: score_csv(
                        source, folder / "out.csv", registry, allow_extra_columns=True
                    )
                )
            )
        bare, scored = min(bare_times), min(score_times)
        # The first call also built the scoring tables (kept per instrument afterwards).
        first = score_times[0]
        print(f"(a) bare csv round trip : {bare:7.3f} s")
        print(f"(b) score_csv           : {scored:7.3f} s   ratio b/a = {scored / bare:.2f}")
        print(f"    its first call      : {first:7.3f} s   ratio     = {first / bare:.2f}")

        script = Path(sys.executable).parent / "pro-service"
        command = str(script) if script.exists() else shutil.which("pro-service")
        if not command:
            print("(c)-(e): the pro-service console script is not installed, skipped")
            return 0
        env = {**os.environ, "PRO_INSTANCE_DIR": str(folder / "instance")}

        def run(argv: list[str]) -> Callable[[], object]:
            return lambda: subprocess.run(  # noqa: S603 - our own scripts, fixed arguments
                argv,
                check=True,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )

        bare_process = run(
            [sys.executable, "-c", ROUND_TRIP, str(source), str(folder / "bare2.csv")]
        )
        cli_process = run(
            [command, "score", "--allow-extra-columns", str(source), "-o", str(folder / "c.csv")]
        )
        process_times: list[float] = []
        cli_times: list[float] = []
        try:
            for _ in range(args.repeat):
                process_times.append(timed(bare_process))
                cli_times.append(timed(cli_process))
        except subprocess.CalledProcessError as exc:
            print(f"(d) pro-service score   : failed: {exc.stderr.decode().strip()[:300]}")
            return 1
        bare_p, cli = min(process_times), min(cli_times)
        print(f"(c) bare round trip, whole process : {spread(process_times)}")
        print(
            f"(d) pro-service score, whole command: {spread(cli_times)}   ratio d/c = "
            f"{cli / bare_p:.2f} (slowest/slowest {max(cli_times) / max(process_times):.2f})"
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
