"""`python -m bench.measured RESULT.json MODULE [ARG...]`: run MODULE as `python -m` would, then
write the process's own peak RSS (not its children's, such as ffmpeg) and exit code to RESULT."""

from __future__ import annotations

import json
import resource
import runpy
import sys
import traceback
from pathlib import Path


def main() -> None:
    """Run the module with the remaining arguments and record how it went."""
    result_file, module, *arguments = sys.argv[1:]
    sys.argv = [module, *arguments]
    code: int | str | None = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code
    except Exception:  # a failing run (the resume case's first attempt) is still measured
        traceback.print_exc()
        code = 1
    # ru_maxrss is in KiB on Linux.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    exit_code = code if isinstance(code, int) else (0 if code is None else 1)
    Path(result_file).write_text(json.dumps({"peak_rss_bytes": peak, "exit_code": exit_code}))
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
