"""A one-node SLURM cluster for tests: munged (unless one already answers), slurmctld and slurmd, started directly
as root (no systemd) on free ports, under a folder of the test's own; every daemon it started is stopped.

Needs root and the Debian packages slurmctld, slurmd, slurm-client and munge (`.ci/run` installs them when it
runs as root). :func:`unavailable` says why a cluster cannot start here, for the test's skip message.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "munged")


def unavailable() -> str | None:
    """Why a test cluster cannot start on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "SLURM test cluster needs root (slurmd runs jobs as their user)"
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        return f"SLURM not installed ({', '.join(missing)} missing; .ci/run installs it with apt as root)"
    return None


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: all sockets stay bound until every port is known (closing each before asking
    for the next let the OS hand out the same port twice, and slurmctld and slurmd then shared one)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _munge_answers() -> bool:
    if not MUNGE_SOCKET.exists():
        return False
    enc = subprocess.run(["munge", "-n"], capture_output=True, check=False)
    return enc.returncode == 0 and subprocess.run(["unmunge"], input=enc.stdout, capture_output=True,
                                                  check=False).returncode == 0


def _real_memory_mb() -> int:
    out = subprocess.run(["slurmd", "-C"], text=True, capture_output=True, check=True).stdout
    return int(re.search(r"RealMemory=(\d+)", out).group(1)) - 256


@dataclass
class Cluster:
    """A running test cluster: ``env`` points SLURM's commands at it."""

    root: Path
    env: dict[str, str]
    pid_files: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every daemon this cluster started (and its jobs with slurmd)."""
        subprocess.run(["scancel", "--user=root"], env=self.env, capture_output=True, check=False)
        for pid_file in reversed(self.pid_files):
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass  # it ended between the last check and now


def start_cluster(root: Path, *, gpus: int = 0, cpus: int | None = None) -> Cluster:
    """Start a one-node cluster with its files under ``root``; ``gpus`` placeholder GPUs for scheduling tests.

    Raises
    ------
    RuntimeError
        If a daemon does not come up (its log is included).
    """
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(exist_ok=True)
    cluster = Cluster(root=root, env=dict(os.environ, SLURM_CONF=str(root / "slurm.conf")))
    if not _munge_answers():
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        shutil.chown(MUNGE_SOCKET.parent, "munge", "munge")
        pid_file = root / "munged.pid"
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--force"], check=True)
        # munged writes its pid to /run/munge/munged.pid; copy it so that stop() finds it
        for _ in range(50):
            if Path("/run/munge/munged.pid").exists():
                shutil.copy("/run/munge/munged.pid", pid_file)
                break
            time.sleep(0.1)
        cluster.pid_files.append(pid_file)
    node = "localhost"
    cpus = cpus or len(os.sched_getaffinity(0))
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    ctld_port, slurmd_port = _free_ports(2)
    conf = f"""\
ClusterName=advtest
SlurmctldHost={socket.gethostname().split('.')[0]}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldTimeout=10
SlurmdTimeout=10
MinJobAge=300
KillWait=5
{"GresTypes=gpu" if gpus else ""}
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_real_memory_mb()}{gres} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
    (root / "slurm.conf").write_text(conf)
    if gpus:
        for i in range(gpus):
            (root / f"fakegpu{i}").touch()
        (root / "gres.conf").write_text(f"AutoDetect=off\nName=gpu File={root}/fakegpu[0-{gpus - 1}]\n")
    subprocess.run(["slurmctld", "-f", str(root / "slurm.conf"), "-c"], env=cluster.env, check=True)
    cluster.pid_files.append(root / "slurmctld.pid")
    subprocess.run(["slurmd", "-f", str(root / "slurm.conf"), "-N", node], env=cluster.env, check=True)
    cluster.pid_files.append(root / "slurmd.pid")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=cluster.env, text=True, capture_output=True,
                               check=False).stdout.strip()
        if state in ("idle", "mix", "alloc"):
            return cluster
        time.sleep(0.3)
    cluster.stop()
    logs = "\n".join(p.read_text()[-2000:] for p in (root / "log").glob("*.log"))
    raise RuntimeError(f"the test SLURM node did not become idle (sinfo: {state!r}):\n{logs}")
