"""`python -m bench.s3_server [--link-mbit M --link-rtt-ms R]`: the local S3-compatible server in
a process of its own, optionally behind an emulated network link (bench/link.py).

Prints the endpoint URL to use on the first line of stdout, then serves until terminated.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from urllib.parse import urlsplit

from bench.link import Link, LinkProxy
from upload_jobs.storage.local_s3 import LocalS3Server


def main() -> None:
    """Serve on 127.0.0.1 and a free port until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--link-mbit", type=float, default=None)
    parser.add_argument("--link-rtt-ms", type=float, default=0.0)
    arguments = parser.parse_args()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with LocalS3Server() as server:
        endpoint = server.endpoint_url
        if arguments.link_mbit:
            address = urlsplit(endpoint)
            link = Link(arguments.link_mbit, arguments.link_rtt_ms)
            proxy = LinkProxy(address.hostname or "127.0.0.1", address.port or 80, link).start()
            endpoint = f"http://127.0.0.1:{proxy.port}"
        print(endpoint, flush=True)
        stop.wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
