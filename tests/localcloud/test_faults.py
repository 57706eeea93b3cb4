"""localcloud.faults: one registry, faults taken oldest first, each for its count of calls."""

from __future__ import annotations

from localcloud.faults import Faults, InvocationFault, RequestFault


def _request(faults: Faults, service: str, method: str = "GET", path: str = "/") -> RequestFault | None:
    return faults.take(RequestFault, lambda f: f.matches(service, method, path))


def test_a_fault_fails_its_count_of_matching_calls_then_none() -> None:
    faults = Faults()
    assert not faults
    fault = faults.arm(RequestFault(service="s3", count=2, method="PUT", path_prefix="/bucket/in/"))
    assert faults
    assert _request(faults, "s3", "GET", "/bucket/in/a") is None, "another method"
    assert _request(faults, "s3", "PUT", "/bucket/out/a") is None, "another path"
    assert _request(faults, "sns", "PUT", "/bucket/in/a") is None, "another service"
    assert _request(faults, "s3", "PUT", "/bucket/in/a") is fault
    assert _request(faults, "s3", "PUT", "/bucket/in/b") is fault
    assert _request(faults, "s3", "PUT", "/bucket/in/c") is None
    assert (fault.hits, fault.spent) == (2, True)


def test_faults_are_taken_oldest_first_and_by_kind() -> None:
    faults = Faults()
    first = faults.arm(RequestFault(service="s3"))
    kill = faults.arm(InvocationFault(function="Resize", count=1))
    hang = faults.arm(InvocationFault(function="Resize", effect="hang"))
    second = faults.arm(RequestFault(service="s3", code="InternalError", status=500))
    assert faults.take(InvocationFault, lambda f: f.function in "imgpipe-WatermarkFunction") is None
    assert faults.take(InvocationFault, lambda f: f.function in "imgpipe-ResizeFunction-1") is kill
    assert faults.take(InvocationFault, lambda f: f.function in "imgpipe-ResizeFunction-1") is hang
    assert _request(faults, "s3") is first
    assert _request(faults, "s3") is second
    assert [kill.effect, hang.effect] == ["kill", "hang"]


def test_clear_disarms_every_fault() -> None:
    faults = Faults()
    faults.arm(RequestFault(service="s3", count=5))
    faults.clear()
    assert not faults
    assert _request(faults, "s3") is None
