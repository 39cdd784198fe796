"""Coverage-guided fuzzing with atheris: `python -m tests.fuzz TARGET [--seconds S] [--runs N]
[crash-file ...]`. TARGET is one of box-walk, moov-parser, planner, startup. The input drives
which seed clip is mutated and how (tests/fuzz/mutations.py); a crash writes its input to
`--artifacts` (pass that file back to replay it). Prints executions and findings at the end."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["upload_jobs"]):
    from tests.fuzz.mutations import KINDS, mutate
    from tests.fuzz.seeds import make_seeds
    from tests.fuzz.targets import TARGETS
    from upload_jobs.media.remux import resolve_ffmpeg


def main() -> None:
    """Fuzz one target until the time or run budget is spent, or a finding."""
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--runs", type=int, default=-1, help="-1: no limit but the time")
    parser.add_argument("--artifacts", type=Path, default=Path("fuzz-findings"))
    parser.add_argument("inputs", nargs="*", help="crash files to replay")
    args = parser.parse_args()
    target = TARGETS[args.target]
    with tempfile.TemporaryDirectory() as folder:
        seeds = make_seeds(Path(folder), resolve_ffmpeg())
    names = sorted(seeds)

    def one_input(data: bytes) -> None:
        drawn = atheris.FuzzedDataProvider(data)
        seed = names[drawn.ConsumeIntInRange(0, len(names) - 1)]
        mutations = [
            (
                drawn.ConsumeIntInRange(0, len(KINDS) - 1),
                drawn.ConsumeIntInRange(0, 2**16),
                drawn.ConsumeIntInRange(0, 2**32),
            )
            for _ in range(drawn.ConsumeIntInRange(1, 3))
        ]
        target(mutate(seeds[seed], mutations))

    args.artifacts.mkdir(parents=True, exist_ok=True)
    libfuzzer = [sys.argv[0], f"-max_total_time={args.seconds}", f"-runs={args.runs}",
                 f"-artifact_prefix={args.artifacts}/{args.target}-", "-print_final_stats=1",
                 *args.inputs]  # fmt: skip
    atheris.Setup(libfuzzer, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
