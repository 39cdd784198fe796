"""A real Ceph RADOS Gateway (the engine DigitalOcean Spaces runs) on 127.0.0.1, from Debian's
packages (`ceph-mon`, `ceph-osd`, `radosgw`, `ceph-common`), for the tests and the benchmarks.

One monitor, one OSD keeping objects in memory (`memstore`), no manager, cluster auth `none`,
radosgw with the `beast` frontend: up in a few seconds, in a temporary directory of its own,
stopped by its PIDs. Every access key a test chooses is added to one RGW user, so (as with moto)
any key sees every bucket. The daemons die with the process that started them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Literal

from tests.support.ports import free_port
from upload_jobs.running import StartedInWith

__all__ = ["INSTALL_HINT", "RgwCluster", "RgwUnavailable", "rgw_missing"]

DAEMONS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph-authtool")
# The Ceph Python bindings come with ceph-common, for the system's interpreter.
SYSTEM_PYTHON = "/usr/bin/python3"
INSTALL_HINT = "apt-get install ceph-mon ceph-osd radosgw ceph-common"
# The pools radosgw would otherwise create one at a time as it first needs them (~2 s each).
RGW_POOLS = (
    ".rgw.root",
    "default.rgw.control",
    "default.rgw.meta",
    "default.rgw.log",
    "default.rgw.buckets.index",
    "default.rgw.buckets.data",
    "default.rgw.buckets.non-ec",
)
USER = "upload-jobs-tests"
# The key the harness itself uses for RGW's STS and IAM APIs.
ADMIN_KEY = ("RGWHARNESSADMIN00001", "rgw-harness-admin-secret")
# RGW's STS encrypts its session tokens with this (it must be 16 bytes).
STS_KEY = "uploadjobs-sts16"
ALLOW_SESSIONS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["sts:GetSessionToken"], "Resource": "*"}],
}
START_TIMEOUT_SECONDS = 90.0
PR_SET_PDEATHSIG = 1

# Runs under the system's Python (it has `rados`): registers the OSD and creates the pools in
# one connection, where the `ceph` command would start an interpreter per call.
_BOOTSTRAP = """
import json, sys, rados
conf, osd_uuid, pools = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
cluster = rados.Rados(conffile=conf)
cluster.connect(timeout=30)
def command(**args):
    code, out, status = cluster.mon_command(json.dumps({**args, "format": "json"}), b"")
    if code != 0:
        sys.exit(f"{args['prefix']} failed ({code}): {status}")
command(prefix="osd new", uuid=osd_uuid)
for pool in pools:
    command(prefix="osd pool create", pool=pool, pg_num=8, pgp_num=8)
    command(prefix="osd pool application enable", pool=pool, app="rgw",
            yes_i_really_mean_it=True)
"""


class RgwUnavailable(RuntimeError):
    """The packages are missing, or the cluster would not start (the message says which)."""


def rgw_missing() -> str | None:
    """Why this machine cannot run RGW (one sentence saying how to get it), or None."""
    absent = [name for name in DAEMONS if shutil.which(name) is None]
    if absent:
        return f"Ceph RGW is not installed ({', '.join(absent)} missing): {INSTALL_HINT}"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import rados"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"Ceph's Python bindings are missing from {SYSTEM_PYTHON}: {INSTALL_HINT}"
    return None


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the test process goes."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class RgwCluster(StartedInWith):
    """A single-node Ceph cluster with radosgw on 127.0.0.1, in a directory of its own."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._keys: set[str] = set()
        self._rgw_port = 0
        self.started_seconds = 0.0

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:<port>` of radosgw."""
        if not self._rgw_port:
            raise RuntimeError("RgwCluster is not running: call start() or use it in `with`")
        return f"http://127.0.0.1:{self._rgw_port}"

    @property
    def pids(self) -> dict[str, int]:
        """The daemons' PIDs by name."""
        return {name: process.pid for name, process in self._processes.items()}

    def start(self) -> RgwCluster:
        """Creates and starts the monitor, the OSD and radosgw; raises `RgwUnavailable`."""
        if missing := rgw_missing():
            raise RgwUnavailable(missing)
        began = time.monotonic()
        self._root = Path(tempfile.mkdtemp(prefix="upload-jobs-rgw-"))
        try:
            self._start_daemons()
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - began
        return self

    def _start_daemons(self) -> None:
        root = self._require_root()
        for folder in ("mon", "osd/osd.0", "run", "log", "rgw"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        fsid, osd_uuid = str(uuid.uuid4()), str(uuid.uuid4())
        mon_port, self._rgw_port = free_port(), free_port()
        conf = root / "ceph.conf"
        conf.write_text(_config(root, fsid, mon_port, self._rgw_port))
        self._run("ceph-authtool", "--create-keyring", str(root / "keyring"), "--gen-key",
                  "-n", "mon.", "--cap", "mon", "allow *")  # fmt: skip
        self._run("monmaptool", "--create", "--add", "a", f"v2:127.0.0.1:{mon_port}",
                  "--fsid", fsid, str(root / "monmap"))  # fmt: skip
        self._run("ceph-mon", "-c", str(conf), "--mkfs", "-i", "a", "--monmap",
                  str(root / "monmap"), "--keyring", str(root / "keyring"))  # fmt: skip
        self._spawn("ceph-mon", "-c", str(conf), "-f", "-i", "a")
        self._run(SYSTEM_PYTHON, "-c", _BOOTSTRAP, str(conf), osd_uuid, ",".join(RGW_POOLS))
        self._run("ceph-osd", "-c", str(conf), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        self._spawn("ceph-osd", "-c", str(conf), "-f", "-i", "0")
        self._spawn("radosgw", "-c", str(conf), "-n", "client.rgw", "-f")
        # The zonegroup stays as Debian makes it (`api_name` `default`): it refuses the tests'
        # regions as a LocationConstraint, as a Space may, and bucket creation must cope.
        self._wait_for_gateway()
        self._create_user()

    def ensure_key(self, access_key: str, secret_key: str) -> None:
        """Makes `access_key`/`secret_key` a key of the tests' user (idempotent per process)."""
        if access_key in self._keys:
            return
        self._admin("key", "create", f"--uid={USER}", "--key-type=s3",
                    f"--access-key={access_key}", f"--secret-key={secret_key}")  # fmt: skip
        self._keys.add(access_key)

    def session_credentials(self) -> tuple[str, str, str]:
        """A temporary key id, secret and session token from RGW's STS (GetSessionToken), for
        the tests' user: what a user with temporary credentials has."""
        # `radosgw-admin key create` rewrites the user without its policy: put it back first.
        self._client("iam").put_user_policy(
            UserName=USER, PolicyName="sessions", PolicyDocument=json.dumps(ALLOW_SESSIONS)
        )
        issued = self._client("sts").get_session_token(DurationSeconds=3600)["Credentials"]
        return issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]

    def _client(self, service: Literal["iam", "sts"]) -> Any:
        """A boto3 client of RGW's IAM or STS API, with the harness's key."""
        import boto3

        return boto3.client(
            service, endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id=ADMIN_KEY[0], aws_secret_access_key=ADMIN_KEY[1],
        )  # fmt: skip

    def _create_user(self) -> None:
        """The tests' user, with the harness's key, allowed to set its own policy."""
        self._admin("user", "create", f"--uid={USER}", f"--display-name={USER}",
                    f"--access-key={ADMIN_KEY[0]}", f"--secret-key={ADMIN_KEY[1]}",
                    "--caps=user-policy=*")  # fmt: skip
        self._keys.add(ADMIN_KEY[0])

    def admin_json(self, *args: str) -> object:
        """`radosgw-admin ARGS` as parsed JSON (bucket stats, gc lists...)."""
        return json.loads(self._admin(*args) or "null")

    def _admin(self, *args: str) -> str:
        conf = str(self._require_root() / "ceph.conf")
        return self._run("radosgw-admin", "-c", conf, "-n", "client.admin", *args)

    def stop(self) -> None:
        """SIGTERM to each daemon (radosgw first), SIGKILL after 10 s; the directory is removed."""
        for name in ("radosgw", "ceph-osd", "ceph-mon"):
            process = self._processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._rgw_port = 0
        self._keys.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def _require_root(self) -> Path:
        if self._root is None:
            raise RuntimeError("RgwCluster is not running")
        return self._root

    def _spawn(self, *command: str) -> None:
        log = self._require_root() / "log" / f"{command[0]}.out"
        with log.open("wb") as output:
            self._processes[command[0]] = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )  # fmt: skip

    def _run(self, *command: str) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RgwUnavailable(f"{command[0]} did not finish in 60 s{self._logs()}") from exc
        if done.returncode != 0:
            raise RgwUnavailable(
                f"{command[0]} {command[1] if len(command) > 1 else ''} failed "
                f"(exit {done.returncode}): {done.stderr.strip()[-800:]}{self._logs()}"
            )
        return done.stdout

    def _wait_for_gateway(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise RgwUnavailable(f"{name} exited with {process.returncode}{self._logs()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(self.endpoint_url, timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise RgwUnavailable(f"radosgw did not answer in {START_TIMEOUT_SECONDS:.0f} s"
                             f"{self._logs()}")  # fmt: skip

    def _logs(self) -> str:
        """The end of each daemon's log, for a failure message."""
        if self._root is None:
            return ""
        tails = []
        for log in sorted((self._root / "log").glob("*")):
            lines = log.read_text(errors="replace").splitlines()[-5:]
            tails.append(f"\n--- {log.name}\n" + "\n".join(lines))
        return "".join(tails)


def _config(root: Path, fsid: str, mon_port: int, rgw_port: int) -> str:
    """ceph.conf for one monitor, one memstore OSD and radosgw, all on loopback, auth off."""
    return f"""
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
# No keys at all; the radosgw client must also be told, or it loops on
# "get_initial_auth_request returned -13".
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
# Every byte lives in the OSD's memory: a bound, not an allocation.
osd objectstore = memstore
memstore device bytes = {16 * 1024**3}
# Pool creation waits for a proposal: without this each takes about 2 s.
paxos propose interval = 0.01
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
mon data = {root}/mon/$name
osd data = {root}/osd/$name
keyring = {root}/keyring

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
rgw enable usage log = false
# memstore keeps deleted objects' bytes until garbage collection: collect within seconds.
rgw gc obj min wait = 5
rgw gc processor period = 5
rgw gc processor max time = 5
# Temporary credentials (GetSessionToken), as users of Spaces may hold.
rgw s3 auth use sts = true
rgw sts key = {STS_KEY}
"""
