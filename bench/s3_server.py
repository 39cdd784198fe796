"""`python -m bench.s3_server`: the local S3-compatible server in a process of its own.

Prints its endpoint URL on the first line of stdout, then serves until terminated.
"""

from __future__ import annotations

import signal
import sys
import threading

from upload_jobs.local_s3 import LocalS3Server


def main() -> None:
    """Serve on 127.0.0.1 and a free port until SIGTERM or SIGINT."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with LocalS3Server() as server:
        print(server.endpoint_url, flush=True)
        stop.wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
