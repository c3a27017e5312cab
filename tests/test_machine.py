"""How many converter processes a shard runs: cgroup CPU quotas (v2 and v1), the affinity mask, memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pdf2md import machine
from pdf2md.shard_pipeline import converter_processes_for


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "300000 100000\n"}, 3.0),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
    ids=["v2-3", "v2-1.5", "v2-max", "v1-2", "v1-cpuacct-0.5", "v1-unlimited", "none"],
)
def test_cgroup_cpu_quota_v1_and_v2(tmp_path: Path, files: dict[str, str], quota: float | None) -> None:
    assert machine.cgroup_cpu_quota(_tree(tmp_path, files)) == quota


def test_available_cpus_is_the_affinity_lowered_to_the_quota(tmp_path: Path) -> None:
    assert machine.available_cpus(tmp_path / "absent") == AFFINITY
    assert machine.available_cpus(_tree(tmp_path / "a", {"cpu.max": "100000 100000"})) == 1
    assert machine.available_cpus(_tree(tmp_path / "b", {"cpu.max": "50000 100000"})) == 1, "never below one"
    assert machine.available_cpus(_tree(tmp_path / "c", {"cpu.max": "6400000 100000"})) == AFFINITY, "never above the mask"


def test_memory_limit_is_the_cgroup_limit_or_the_machine_total(tmp_path: Path) -> None:
    meminfo = _tree(tmp_path, {"meminfo": "MemTotal:       16384000 kB\nMemFree: 1 kB\n"}) / "meminfo"
    assert machine.memory_limit_mb(_tree(tmp_path / "v2", {"memory.max": str(6 * 2**30)}), meminfo) == 6144
    assert machine.memory_limit_mb(_tree(tmp_path / "v2max", {"memory.max": "max\n"}), meminfo) == 16000
    v1 = _tree(tmp_path / "v1", {"memory/memory.limit_in_bytes": "9223372036854771712\n"})
    assert machine.memory_limit_mb(v1, meminfo) == 16000, "v1's 'unlimited' is a huge number"
    assert machine.memory_limit_mb(tmp_path / "none", tmp_path / "no-meminfo") is None


def test_converter_processes_follow_cpus_gpu_and_memory() -> None:
    big = 64_000
    assert machine.converter_processes(0, pdf_memory_mb=4096, gpu_feeder=False, cpus=4, memory_mb=big) == 4
    assert machine.converter_processes(0, pdf_memory_mb=4096, gpu_feeder=True, cpus=4, memory_mb=big) == 3
    assert machine.converter_processes(0, pdf_memory_mb=4096, gpu_feeder=True, cpus=1, memory_mb=big) == 1
    # g4dn.xlarge: 16 GiB for 4 vCPUs; 4 GB per PDF leaves room for 3 children.
    assert machine.converter_processes(0, pdf_memory_mb=4096, gpu_feeder=False, cpus=4, memory_mb=15_500) == 3
    assert machine.converter_processes(0, pdf_memory_mb=4096, gpu_feeder=False, cpus=4, memory_mb=2_000) == 1
    assert machine.converter_processes(0, pdf_memory_mb=4096, gpu_feeder=False, cpus=2, memory_mb=None) == 2
    assert machine.converter_processes(7, pdf_memory_mb=4096, gpu_feeder=True, cpus=2, memory_mb=2_000) == 7, "asked for"


def test_dolphin_leaves_a_cpu_and_its_memory_to_the_gpu_feeder() -> None:
    assert converter_processes_for("dolphin", 4, 4096) == 4, "asked for"
    assert converter_processes_for("", 5, 4096) == 5
    assert converter_processes_for("dolphin", 0, 1024, 2048) == machine.converter_processes(
        0, pdf_memory_mb=1024, gpu_feeder=True, feeder_memory_mb=2048)
    assert converter_processes_for("ocr", 0, 1024) == machine.converter_processes(0, pdf_memory_mb=1024, gpu_feeder=False)
    # g4dn.xlarge: 16 GiB for 4 vCPUs; the feeder's 4 GB set aside leaves room for 2 planners at 4 GB per PDF.
    assert machine.converter_processes(0, pdf_memory_mb=4096, gpu_feeder=True, feeder_memory_mb=4096, cpus=4, memory_mb=15_500) == 2
    assert machine.converter_processes(0, pdf_memory_mb=4096, gpu_feeder=False, feeder_memory_mb=4096, cpus=4, memory_mb=15_500) == 3
