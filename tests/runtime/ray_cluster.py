"""A real two-node Ray cluster on this machine for tests: `ray start --head` plus `ray start --address=...`.

Each node is its own `ray start --block` process group leader in a new session, with its own temp dir
(sockets, logs, the `ray_current_cluster` file), its own ports and its own auth token file, so it
never touches another Ray on the machine: it is stopped by killing exactly the processes of its
session (Ray's workers start their own process groups, but stay in the node's session). Never use
`ray stop`: it stops every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != sid:
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            pids.append(int(entry))
    return pids


@dataclass
class RayNode:
    proc: subprocess.Popen
    temp_dir: Path
    resources: dict[str, float]
    pids_seen: set[int] = field(default_factory=set)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def members(self) -> list[int]:
        pids = session_members(self.proc.pid)
        self.pids_seen.update(pids)
        return pids

    def cpu_seconds(self, title: str) -> float:
        """CPU time used so far by this node's processes whose title starts with `title` (e.g. "ray::RolloutWorker")."""
        total = 0.0
        for pid in self.members():
            try:
                if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(title.encode()):
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        return total

    def wait_busy(self, title: str, timeout: float, window: float = 0.3, share: float = 0.5) -> bool:
        """Wait until processes titled `title` use more than `share` of a core over `window` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds(title)
            time.sleep(window)
            if self.cpu_seconds(title) - before > share * window:
                return True
        return False

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL every process of this node's session (the node is lost, as when a machine dies)."""
        deadline = time.monotonic() + timeout
        while pids := self.members():
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ray node in {self.temp_dir}: processes {pids} survive SIGKILL")
            time.sleep(0.2)
        self.proc.wait(timeout=timeout)


class TwoNodeCluster:
    """Head (`head_node` label) and a second node (`rollout_node` label) on loopback."""

    def __init__(self, head_cpus: int = 4, node_cpus: int = 1, object_store_bytes: int = 200 << 20) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="rlc-", dir="/tmp"))  # short: Ray's socket paths are limited
        token = self.base / "auth_token"
        token.write_text(secrets.token_hex(32))
        # Token authentication, with a token of this cluster's own (not ~/.ray/auth_token).
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        self.object_store_bytes = object_store_bytes
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.head = self._start("head", ["--head", f"--port={self.port}", f"--ray-client-server-port={free_port()}",
                                         "--include-dashboard=false"], head_cpus, {"head_node": 1.0})
        self.node: RayNode | None = None
        self.node_cpus = node_cpus
        self.start_node()

    def env(self) -> dict[str, str]:
        """Environment of a driver of this cluster (and of its nodes): no inherited Ray address or path."""
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
        return env | self.auth_env

    def _start(self, name: str, args: list[str], cpus: int, resources: dict[str, float]) -> RayNode:
        temp_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.base))
        # The node's processes see no rlsys on their path: cwd outside the checkout, no PYTHONPATH, TMPDIR of its own.
        env = self.env() | {"TMPDIR": str(temp_dir)}
        cmd = [RAY, "start", "--block", "--disable-usage-stats", f"--temp-dir={temp_dir}", f"--num-cpus={cpus}",
               f"--resources={json.dumps(resources)}", f"--object-store-memory={self.object_store_bytes}",
               f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
               f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}", *args]
        log = (temp_dir / "ray_start.log").open("w")
        proc = subprocess.Popen(cmd, cwd=temp_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        node = RayNode(proc, temp_dir, resources)
        # `ray start` writes the address file into its own temp dir once the node is up.
        deadline = time.monotonic() + 120
        while not (temp_dir / "ray_current_cluster").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                node.kill()
                raise RuntimeError(f"ray {name} did not start: {(temp_dir / 'ray_start.log').read_text()[-3000:]}")
            time.sleep(0.2)
        return node

    def start_node(self) -> RayNode:
        if self.node is not None and self.node.alive():
            return self.node
        self.node = self._start("node", [f"--address={self.address}"], self.node_cpus, {"rollout_node": 1.0})
        return self.node

    def python(self, code: str, timeout: float = 300) -> Any:
        """Run `code` as a driver of this cluster in a fresh interpreter; it prints one JSON line last."""
        out = subprocess.run([sys.executable, "-c", code], env=self.env(), cwd=self.base, capture_output=True,
                             text=True, timeout=timeout)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
        # Ray forwards the actors' log lines to the driver's stdout, also after the JSON line: take the last line
        # that is JSON.
        for line in reversed(out.stdout.strip().splitlines()):
            if line.startswith(("{", "[")):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        raise AssertionError(f"no JSON line in the driver's output: {out.stdout[-3000:]}")

    def nodes(self) -> list[dict]:
        """The cluster's node table as the GCS sees it (alive flag, resources), read by a separate driver."""
        code = (f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
                "print(json.dumps([dict(id=n['NodeID'], alive=n['Alive'], resources=n['Resources']) "
                "for n in ray.nodes()]))")
        return self.python(code, timeout=120)

    def stop(self) -> None:
        for node in (self.node, self.head):
            if node is not None:
                node.kill()
        shutil.rmtree(self.base, ignore_errors=True)
