"""What this machine lets a shard use: CPUs and memory as the container sees them, not as the host has them.

A container on AWS Batch (or Docker with `--cpus`) sees every host CPU in /proc/cpuinfo while a cgroup quota
lets it use only some: counting the host's CPUs would start more converter processes than can run, and each
one's time limit would then be spent waiting for a CPU. The quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`),
the CPU affinity mask and the memory limit decide how many converters a shard runs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CHILD_OVERHEAD_MB = 256
"""What a converter child holds before its first PDF (interpreter, pypdfium2, the text path), on top of the
per-PDF memory limit, when dividing the machine's memory among children."""
PARENT_RESERVE_MB = 512
"""Memory kept for the shard process itself (S3 clients, queues, Markdown waiting to be uploaded)."""


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use: the affinity mask, lowered to a cgroup CPU quota when there is one (≥ 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, max(1, int(quota)))
    return max(1, cpus)


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`); None when unlimited or unknown."""
    v2 = _read(cgroup_root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            return _ratio(parts[0], parts[1])
        return None
    for v1 in (cgroup_root / "cpu", cgroup_root / "cpu,cpuacct", cgroup_root):
        quota, period = _read(v1 / "cpu.cfs_quota_us"), _read(v1 / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return None if quota.strip() == "-1" else _ratio(quota, period)
    return None


def memory_limit_mb(cgroup_root: Path = CGROUP_ROOT, meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The memory this container may use: the cgroup limit (v2 `memory.max`, v1 `memory.limit_in_bytes`),
    else the machine's total; None when neither can be read."""
    limits: list[int] = []
    for candidate in (cgroup_root / "memory.max", cgroup_root / "memory" / "memory.limit_in_bytes"):
        raw = _read(candidate)
        if raw is not None and raw.strip().isdigit():
            limits.append(int(raw) // 2**20)
    total = _meminfo_total_mb(meminfo)
    if total is not None:
        limits.append(total)
    return min(limits) if limits else None


def converter_processes(
    requested: int,
    *,
    pdf_memory_mb: int,
    gpu_feeder: bool,
    feeder_memory_mb: int = 0,
    cpus: int | None = None,
    memory_mb: int | None = None,
) -> int:
    """How many isolated converters a shard runs.

    `requested` > 0 is taken as given (an operator's choice). Otherwise one per usable CPU, less one when a
    model backend runs on a GPU (that CPU renders pages and feeds the GPU: gpu_feeder.py), and no more than
    the memory holds at each child's per-PDF limit, once the feeder's own limit (`feeder_memory_mb`) is set
    aside: a shard never promises more memory than it has.
    """
    if requested > 0:
        return requested
    cpus = available_cpus() if cpus is None else cpus
    by_cpu = max(1, cpus - 1) if gpu_feeder else cpus
    memory_mb = memory_limit_mb() if memory_mb is None else memory_mb
    if memory_mb is None:
        return by_cpu
    reserve_mb = PARENT_RESERVE_MB + (feeder_memory_mb if gpu_feeder else 0)
    by_memory = max(1, (memory_mb - reserve_mb) // (pdf_memory_mb + CHILD_OVERHEAD_MB))
    if by_memory < by_cpu:
        log.info("%d converter process(es), not %d: %d MB of memory at %d MB per PDF", by_memory, by_cpu, memory_mb, pdf_memory_mb)
    return max(1, min(by_cpu, by_memory))


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = float(quota), float(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _meminfo_total_mb(meminfo: Path) -> int | None:
    text = _read(meminfo)
    for line in (text or "").splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) // 1024
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
