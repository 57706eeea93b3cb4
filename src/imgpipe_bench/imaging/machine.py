"""How the imaging benchmark runs on this machine: one libvips thread, CPU time, and pinning to one core
only when a core is idle."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

#: A core is pinned to only when it was idle for more than this fraction of ``IDLE_SAMPLE_S``.
IDLE_MIN: Final = 0.9
IDLE_SAMPLE_S: Final = 0.5
VIPS_THREADS: Final = 1
CPU_TIME: Final = (
    "CPU time: getrusage(RUSAGE_SELF) user + system of the whole measuring process, so libvips' worker threads count"
)
THREADS: Final = (
    f"libvips threads: VIPS_CONCURRENCY={VIPS_THREADS} for every implementation, in the measuring process and "
    "the memory subprocesses (a Lambda function below 1769 MB has less than one vCPU)"
)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_vips_thread(vips: Any | None = None) -> int | None:
    """``VIPS_CONCURRENCY=1`` for libvips in this process (an initialised libvips through ``vips``, the
    pyvips module) and in the subprocesses it starts; the concurrency libvips reports, when loaded."""
    os.environ["VIPS_CONCURRENCY"] = str(VIPS_THREADS)
    if vips is None:
        return None
    vips.concurrency_set(VIPS_THREADS)
    return int(vips.concurrency_get())


def _cpu_times() -> dict[int, tuple[int, int]]:
    """(idle + iowait, total) jiffies of each CPU, from /proc/stat."""
    times: dict[int, tuple[int, int]] = {}
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *fields = line.split()
            if name.startswith("cpu") and name != "cpu":
                values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
                times[int(name[3:])] = (values[3] + values[4], sum(values))
    return times


def idle_fractions(seconds: float = IDLE_SAMPLE_S) -> dict[int, float]:
    """Each CPU's idle fraction over ``seconds``; empty where /proc/stat cannot be read."""
    try:
        before = _cpu_times()
        time.sleep(seconds)
        after = _cpu_times()
    except (OSError, ValueError):
        return {}
    fractions = {}
    for cpu, (idle, total) in after.items():
        if cpu in before and total > before[cpu][1]:
            fractions[cpu] = (idle - before[cpu][0]) / (total - before[cpu][1])
    return fractions


@dataclass(frozen=True)
class Pinning:
    """The core the run is pinned to (None: not pinned) and why, in one line."""

    cpu: int | None
    how: str


def choose_core(allowed: set[int], idle: dict[int, float]) -> Pinning:
    """The idlest allowed core, when it was idle more than ``IDLE_MIN`` of the sample; else none."""
    known = {cpu: idle[cpu] for cpu in allowed if cpu in idle}
    if not known:
        return Pinning(None, "not pinned: the cores' idle time cannot be read (/proc/stat)")
    cpu = max(sorted(known), key=known.__getitem__)
    seen = f"CPU {cpu} {known[cpu]:.0%} idle over {IDLE_SAMPLE_S} s"
    if known[cpu] > IDLE_MIN:
        return Pinning(cpu, f"pinned to CPU {cpu} ({seen})")
    return Pinning(None, f"not pinned: no core idle > {IDLE_MIN:.0%} (the idlest: {seen}); other work runs")


@contextmanager
def one_idle_core() -> Iterator[Pinning]:
    """Pin this process (and the memory subprocesses it starts) to an idle core, if there is one; restore."""
    if not hasattr(os, "sched_setaffinity"):
        yield Pinning(None, "not pinned: no sched_setaffinity here")
        return
    allowed = os.sched_getaffinity(0)
    pinning = choose_core(allowed, idle_fractions())
    if pinning.cpu is None:
        yield pinning
        return
    os.sched_setaffinity(0, {pinning.cpu})
    try:
        yield pinning
    finally:
        os.sched_setaffinity(0, allowed)


def versions(vips: Any) -> dict[str, str | None]:
    """Python, Pillow, pyvips and libvips versions."""
    from PIL import __version__ as pillow

    return {
        "python": platform.python_version(),
        "pillow": pillow,
        "pyvips": None if vips is None else str(vips.__version__),
        "libvips": None if vips is None else ".".join(str(vips.version(i)) for i in range(3)),
    }


def machine() -> dict[str, Any]:
    """Cores and platform."""
    return {"cores": os.cpu_count(), "machine": platform.machine(), "platform": platform.platform()}
