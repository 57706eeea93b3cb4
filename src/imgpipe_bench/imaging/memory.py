"""Peak memory of one implementation on one source, in a fresh subprocess each.

``peak_memory()`` starts ``python -m imgpipe_bench.imaging.memory --child IMPL FORMAT SOURCE [STAGING]``;
the child runs ``child()`` and prints its figures as one JSON object. The child inherits the environment,
``VIPS_CONCURRENCY`` included, and the CPU affinity of the measuring process.
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imgpipe_bench.imaging.cases import OURS_STEPS, VIPS_IMPLEMENTATIONS, warm_up_source
from imgpipe_bench.imaging.implementations import ours_resize_step, ours_watermark_step, pyvips_module, runner


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # resets VmHWM to the current RSS (Linux 4.0+)
    except OSError:
        return False
    return True


def _memory_runner(impl: str, staging: Path) -> Callable[[bytes], object]:
    if impl == OURS_STEPS[0]:
        return lambda data: ours_resize_step(data, staging)
    if impl == OURS_STEPS[1]:
        return lambda data: ours_watermark_step(staging)
    vips, why = pyvips_module() if impl in VIPS_IMPLEMENTATIONS else (None, None)
    if why:
        raise RuntimeError(why)
    return runner(impl, vips)


def child(impl: str, fmt: str, source: Path, staging: Path | None = None) -> dict[str, Any]:
    """Run one implementation (or one step of ours) once on ``source``, after a warm-up on a small
    synthetic image in the same format (``fmt``, Pillow's name); peak added RSS in MiB. The source bytes
    are read before the measurement, for every implementation. The watermark step reads the intermediates
    in ``staging``, which another process wrote, as the resize function does in the pipeline."""
    with tempfile.TemporaryDirectory(prefix="imgpipe-warm-") as tmp:
        warm = Path(tmp)
        small = warm_up_source(fmt)
        if impl == OURS_STEPS[1]:
            ours_resize_step(small, warm)
        _memory_runner(impl, warm)(small)  # codecs, font, caches loaded
        run = _memory_runner(impl, staging or warm)
        data = source.read_bytes()
        gc.collect()
        if _reset_peak() and (before := _status_kb("VmRSS")) is not None:
            method = "VmHWM after /proc/self/clear_refs, minus VmRSS at reset"
            run(data)
            peak = _status_kb("VmHWM") or 0
        else:  # no /proc: ru_maxrss, valid only when the run's peak exceeds everything before it
            method = "ru_maxrss delta"
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            run(data)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_added_mb": round((peak - before) / 1024, 1), "method": method}


def peak_memory(impl: str, fmt: str, source: Path) -> dict[str, Any]:
    """``child()``'s figures for ``impl`` on ``source`` (in Pillow's format ``fmt``), from a fresh Python
    process."""
    with tempfile.TemporaryDirectory(prefix="imgpipe-staging-") as staging:
        command = [sys.executable, "-m", "imgpipe_bench.imaging.memory", "--child", impl, fmt, str(source)]
        if impl == OURS_STEPS[1]:
            ours_resize_step(source.read_bytes(), Path(staging))  # in this process: the resize function's output
            command.append(staging)
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"memory run {impl} on {source.name} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _child_main(argv: Sequence[str]) -> int:
    impl, fmt, source, *staging = argv
    print(json.dumps(child(impl, fmt, Path(source), Path(staging[0]) if staging else None)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(_child_main(sys.argv[2:]))
    sys.exit("usage: imgpipe bench imaging (this module only runs the memory subprocesses itself)")
