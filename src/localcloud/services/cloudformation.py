"""CloudFormation: stacks are created whole before anyone reads them.

Each service creates its own resources from CloudFormation and patches how (``s3``: buckets,
``stepfunctions``: state machines, ``lambda_``: functions); this module holds what is the stack's own.
Patch: ``cfn_stack_reads_wait_for_create``.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.cloudformation.models import CloudFormationBackend

from localcloud.patching import Patch, original

#: The backend calls that create or read a stack, serialised by one lock.
CFN_GUARDED = (
    "create_stack",
    "describe_stacks",
    "describe_stack_resource",
    "describe_stack_resources",
    "list_stack_resources",
)
_cfn_lock = threading.RLock()


def _serialised(name: str) -> Any:
    """moto 5.2.5 lists a stack before its resources exist and creates resources on first reference:
    a DescribeStacks that arrives during CreateStack evaluates the outputs and creates a second copy
    of resources (two state machines, the rule targeting one, the output naming the other)."""

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _cfn_lock:
            return original(CloudFormationBackend, name)(self, *args, **kwargs)

    guarded.__name__ = name
    guarded.__doc__ = _serialised.__doc__
    return guarded


PATCHES = tuple(
    Patch(("cfn_stack_reads_wait_for_create",), CloudFormationBackend, name, _serialised(name)) for name in CFN_GUARDED
)


def reset() -> None:
    """Nothing is kept between runs."""
