"""What the pipeline would cost on AWS per million images, from a local run or from given figures.

    imgpipe cost [PATH...] [--json] [--images N] [--duration-scale X] [--parameter K=V] [--alternatives]
    imgpipe cost --transitions-per-image 8 --ms Resize=300 --ms Watermark=150 --memory Resize=1769

One table of published prices (``prices.PRICES``, us-east-1, with its date), a ``usage.Measurement`` of
what one image uses (Lambda REPORT lines per function, state transitions and durations per execution),
and ``model.estimate()`` turning the two into dollars for Standard and Express workflows on x86_64 and
arm64. ``local`` measures on the embedded local cloud, ``report`` prints a report, ``alternatives`` the
same measurement under other assumptions, and ``command`` is ``imgpipe cost``. This package exposes the
public names of all of them.

How AWS bills, as read here:

- **Lambda**: $ per request, plus $ per GB-second = billed duration (1 ms granularity; since August 2025
  the init phase of on-demand ZIP functions is billed too, so a cold start's billed duration includes its
  Init Duration, as the local REPORT lines do) x configured memory / 1024. arm64 and x86_64 differ only
  in the GB-s price.
- **Step Functions Standard**: $ per state transition. Each state entered is one transition (Choice, Pass,
  Task, Succeed and Fail states alike); each retry of a task is one more. Read from
  ``get_execution_history``: one per ``*StateEntered`` event, plus one per ``TaskScheduled`` (or
  ``LambdaFunctionScheduled``/``ActivityScheduled``) that follows a failed attempt rather than its
  state's entry.
- **Step Functions Express**: $ per execution (request), plus $ per GB-second where, per execution, the
  duration (start to end) is rounded up to the next 100 ms and the memory is rounded up to the next 64 MB
  chunk. AWS estimates an execution's memory as 50 MB + the definition's size + the execution data size
  (times the number of Map/Parallel iterations; this machine has none), so a workflow passing S3
  references bills 64 MB: ``express_memory_mb()``. AWS's own example counts 1 MB = 1000 KB; so does this.

What a local run cannot show, and the knobs for it:

- Durations are this machine's. ``duration_scale`` multiplies every Lambda duration (and the time an
  Express execution spends in its tasks; the orchestration time between tasks is kept as measured).
- On Lambda, CPU is proportional to memory (1769 MB = one vCPU); a local worker always has a whole core.
  ``cpu_scaling=True`` treats each function as CPU-bound: its duration at M MB below 1769 is the local one
  x 1769 / M (no gain above 1769 MB for single-threaded code). Without it, durations are taken as if
  memory did not matter (right for I/O-bound code). The truth for a mixed function lies between the two.
- A handful of local images starts a worker per function and core: half the invocations are cold. At a
  million images they are a small fraction: ``cold_start_rate`` (the CLI's default, 1%, is what AWS's
  operator guide reports for production workloads) replaces the measured one.

Not included: S3 requests and storage, CloudWatch Logs, DynamoDB, SNS, KMS, data transfer, free tiers, and
the cheaper tiers above the first (the report says when the volume leaves the first tier).
"""

from imgpipe_bench.cost.command import (
    DESCRIPTION,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_arguments,
    run,
)
from imgpipe_bench.cost.local import measure_local, run_local, sample_images
from imgpipe_bench.cost.model import (
    MEMORY_SIZES,
    FunctionCost,
    MemoryOption,
    Report,
    ScenarioCost,
    estimate,
    memory_options,
    modelled_ms,
)
from imgpipe_bench.cost.prices import (
    ARCHITECTURES,
    PRICES,
    STEADY_COLD_START_RATE,
    WORKFLOWS,
    Prices,
    cpu_factor,
    express_billed_ms,
    express_memory_mb,
)
from imgpipe_bench.cost.report import render, to_json
from imgpipe_bench.cost.usage import (
    ExecutionUsage,
    FunctionUsage,
    Measurement,
    count_transitions,
    display_name,
    execution_usage,
    from_cloud,
    from_figures,
    function_usages,
    happy_path_transitions,
    template_memory,
    with_memory,
)

__all__ = [
    "ARCHITECTURES",
    "DESCRIPTION",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MEMORY_SIZES",
    "PRICES",
    "STEADY_COLD_START_RATE",
    "WORKFLOWS",
    "ExecutionUsage",
    "FunctionCost",
    "FunctionUsage",
    "Measurement",
    "MemoryOption",
    "Prices",
    "Report",
    "ScenarioCost",
    "UsageError",
    "add_arguments",
    "count_transitions",
    "cpu_factor",
    "display_name",
    "estimate",
    "execution_usage",
    "express_billed_ms",
    "express_memory_mb",
    "from_cloud",
    "from_figures",
    "function_usages",
    "happy_path_transitions",
    "measure_local",
    "memory_options",
    "modelled_ms",
    "render",
    "run",
    "run_local",
    "sample_images",
    "template_memory",
    "to_json",
    "with_memory",
]
