"""Published prices (``PRICES``: us-east-1, with its date) and how AWS rounds what it bills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, Decimal
from typing import Final


@dataclass(frozen=True)
class Prices:
    """Published on-demand prices, in US dollars, for one region on one date."""

    source: str
    as_of: date
    region: str
    lambda_request: Decimal
    """Per Lambda request (invocation, retries included)."""
    lambda_gb_s_x86: Decimal
    lambda_gb_s_arm64: Decimal
    lambda_first_tier_gb_s_x86: Decimal
    """GB-seconds per month billed at the prices above; cheaper beyond."""
    lambda_first_tier_gb_s_arm64: Decimal
    standard_transition: Decimal
    """Per state transition of a Standard workflow (retries count)."""
    express_request: Decimal
    """Per Express execution started."""
    express_gb_s: Decimal
    express_first_tier_gb_hours: Decimal
    express_duration_increment_ms: int
    express_memory_chunk_mb: int
    express_base_memory_mb: Decimal
    """What AWS adds to the definition and data sizes when it estimates an Express execution's memory."""
    cpu_full_vcpu_mb: int
    """Lambda allocates CPU in proportion to memory; this much memory is one full vCPU."""


PRICES: Final = Prices(
    source=(
        "https://aws.amazon.com/lambda/pricing/ and https://aws.amazon.com/step-functions/pricing/ "
        "(us-east-1), as recorded in design/performance-facts.md"
    ),
    as_of=date(2026, 11, 24),
    region="us-east-1",
    lambda_request=Decimal("0.20") / 1_000_000,
    lambda_gb_s_x86=Decimal("0.0000166667"),
    lambda_gb_s_arm64=Decimal("0.0000133334"),
    lambda_first_tier_gb_s_x86=Decimal(6_000_000_000),
    lambda_first_tier_gb_s_arm64=Decimal(7_500_000_000),
    standard_transition=Decimal("0.025") / 1000,
    express_request=Decimal("1.00") / 1_000_000,
    express_gb_s=Decimal("0.00001667"),
    express_first_tier_gb_hours=Decimal(1000),
    express_duration_increment_ms=100,
    express_memory_chunk_mb=64,
    express_base_memory_mb=Decimal(50),
    cpu_full_vcpu_mb=1769,
)

#: AWS's Lambda operator guide: in production workloads cold starts are under 1% of invocations.
STEADY_COLD_START_RATE: Final = Decimal("0.01")
ARCHITECTURES: Final = ("x86_64", "arm64")
WORKFLOWS: Final = ("STANDARD", "EXPRESS")
ZERO: Final = Decimal(0)


def ceil_to(value: Decimal, step: int) -> Decimal:
    """``value`` rounded up to a multiple of ``step`` (at least one step)."""
    steps = (value / step).to_integral_value(rounding=ROUND_CEILING)
    return max(Decimal(1), steps) * step


def express_billed_ms(duration_ms: Decimal, prices: Prices = PRICES) -> Decimal:
    """An Express execution's duration as billed: rounded up to the next 100 ms."""
    return ceil_to(duration_ms, prices.express_duration_increment_ms)


def express_memory_mb(
    definition_bytes: int, data_bytes: int, map_or_parallel_iterations: int = 1, prices: Prices = PRICES
) -> int:
    """An Express execution's memory as billed: AWS's estimate rounded up to the next 64 MB chunk."""
    used_mb = prices.express_base_memory_mb + (
        Decimal(definition_bytes) + Decimal(data_bytes) * max(1, map_or_parallel_iterations)
    ) / Decimal(1_000_000)
    return int(ceil_to(used_mb, prices.express_memory_chunk_mb))


def cpu_factor(memory_mb: int, prices: Prices = PRICES) -> Decimal:
    """How much longer CPU-bound code runs at this memory than on a whole vCPU."""
    return max(Decimal(1), Decimal(prices.cpu_full_vcpu_mb) / Decimal(memory_mb))
