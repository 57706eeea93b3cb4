"""statemachines/image_pipeline.asl.json: parsed by moto's ASL parser, then checked state by state.

Retry and Catch rules: a Lambda task retries the four Lambda service errors and the pipeline's
TransientError (with backoff, a cap and full jitter), never a ValidationError (it cannot pass on
retry) nor States.ALL/States.TaskFailed (which would include them); every failure goes to
'Publish Failure', which tells SNS directly and ends in a Fail state carrying the original error.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
from moto.stepfunctions.parser.asl.static_analyser.express_static_analyser import ExpressStaticAnalyser
from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser

from pipeline import errors
from pipeline.events import NotifyEvent, ResizeEvent, StoreEvent, ValidateEvent, WatermarkEvent
from tests.template.helpers import PLACEHOLDER, ROOT

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
LAMBDA_SERVICE_ERRORS = frozenset(
    {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    }
)
PIPELINE_ORDER = ["Validate", "Resize", "Watermark", "Store", "Notify"]
CLEANUP = "Cleanup"
FAILURE = "Publish Failure"

EVENTBRIDGE_INPUT = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "123456789012",
    "time": "2025-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::source-bucket"],
    "detail": {
        "version": "0",
        "bucket": {"name": "source-bucket"},
        "object": {"key": "uploads/holiday+photo.jpg", "size": 1024, "etag": "abc", "sequencer": "00"},
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "reason": "PutObject",
    },
}
MANUAL_INPUT = {"bucket": "source-bucket", "key": "uploads/holiday photo.jpg"}
CONTEXT = {"Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:ImagePipeline:run", "StartTime": "t"}}


def subclasses(cls: type[Any]) -> Iterator[type[Any]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


VALIDATION_ERRORS = frozenset(
    {errors.ValidationError.__name__} | {c.__name__ for c in subclasses(errors.ValidationError)}
)
#: Error names no retrier of a Lambda task may match: permanent errors, and the catch-alls that include them.
NOT_RETRIED = VALIDATION_ERRORS | {"States.ALL", "States.TaskFailed", errors.ConfigurationError.__name__}


def substituted(asl_text: str) -> str:
    """The definition with every ${...} replaced by a well-formed dummy ARN, as CloudFormation would."""

    def arn(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.endswith("FunctionArn"):
            return f"arn:aws:lambda:us-east-1:123456789012:function:{name.removesuffix('Arn')}"
        if name == "TopicArn":
            return "arn:aws:sns:us-east-1:123456789012:Topic"
        raise AssertionError(f"no dummy value for ${{{name}}}")

    return PLACEHOLDER.sub(arn, asl_text)


def states_of(asl: Mapping[str, Any], kind: str | None = None, resource: str | None = None) -> dict[str, Any]:
    return {
        name: state
        for name, state in asl["States"].items()
        if (kind is None or state["Type"] == kind) and (resource is None or state.get("Resource") == resource)
    }


def lambda_tasks(asl: Mapping[str, Any]) -> dict[str, Any]:
    return states_of(asl, "Task", LAMBDA_INVOKE)


def successors(state: Mapping[str, Any]) -> list[str]:
    found = [state["Next"]] if "Next" in state else []
    found += [choice["Next"] for choice in state.get("Choices", [])]
    found += [state["Default"]] if "Default" in state else []
    found += [catcher["Next"] for catcher in state.get("Catch", [])]
    return found


# ---------------------------------------------------------------- a small JSONPath interpreter for static walks


def get_path(document: Any, path: str) -> Any:
    """Value at a simple JSONPath ($, $.a.b); KeyError when absent."""
    assert path == "$" or path.startswith("$."), f"unsupported path {path!r}"
    value = document
    for part in path[2:].split(".") if path != "$" else []:
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"{path} (at {part!r})")
        value = value[part]
    return value


def put_path(document: Any, path: str | None, value: Any) -> Any:
    if path is None:
        return document
    if path == "$":
        return value
    result = json.loads(json.dumps(document))
    target = result
    *parents, last = path[2:].split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    return result


def render(template: Any, data: Any) -> Any:
    """Parameters/ResultSelector applied to ``data``: "key.$" fields are paths ($$. is the context object)."""
    if isinstance(template, Mapping):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = get_path(CONTEXT, value[1:]) if value.startswith("$$.") else get_path(data, value)
            else:
                out[key] = render(value, data)
        return out
    if isinstance(template, list):
        return [render(item, data) for item in template]
    return template


def rule_matches(rule: Mapping[str, Any], data: Any) -> bool:
    if "And" in rule:
        return all(rule_matches(r, data) for r in rule["And"])
    if "Or" in rule:
        return any(rule_matches(r, data) for r in rule["Or"])
    if "Not" in rule:
        return not rule_matches(rule["Not"], data)
    try:
        value = get_path(data, rule["Variable"])
        present = True
    except KeyError:
        value, present = None, False
    if "IsPresent" in rule:
        return present is rule["IsPresent"]
    if "StringEquals" in rule:
        return present and value == rule["StringEquals"]
    if "IsString" in rule:
        return present and isinstance(value, str) is rule["IsString"]
    raise NotImplementedError(f"the static walk does not know this Choice rule: {rule}")


def walk(asl: Mapping[str, Any], data: Any, fail_at: str | None = None) -> tuple[list[str], Any]:
    """Follow the definition for ``data`` without running anything; tasks return placeholders.

    Each Task's Parameters are rendered against the data it would get (a missing path fails the
    walk, as it would fail the execution). ``fail_at`` makes that task fail and follows its Catch.
    """
    name = asl["StartAt"]
    visited: list[str] = []
    while True:
        assert name in asl["States"], f"transition to missing state {name!r}"
        assert len(visited) < 50, f"no end in sight: {visited}"
        state = asl["States"][name]
        visited.append(name)
        for unsupported in ("InputPath", "OutputPath", "Result", "Assign", "Output", "Arguments"):
            assert unsupported not in state, f"the static walk does not model {unsupported} ({name})"
        kind = state["Type"]
        if kind in ("Succeed", "Fail"):
            if kind == "Fail":
                for field in ("ErrorPath", "CausePath"):
                    if field in state:
                        get_path(data, state[field])
            return visited, data
        if kind == "Choice":
            name = next((c["Next"] for c in state["Choices"] if rule_matches(c, data)), state.get("Default", ""))
            continue
        if kind == "Pass":
            data = put_path(data, state.get("ResultPath", "$"), render(state.get("Parameters", data), data))
        elif kind == "Task":
            rendered = render(state.get("Parameters", {}), data)
            if name == fail_at:
                catcher = next(c for c in state["Catch"] if "States.ALL" in c["ErrorEquals"])
                error = {"Error": "TooManyPixels", "Cause": "declared 10^9 pixels"}
                data = put_path(data, catcher.get("ResultPath", "$"), error)
                name = catcher["Next"]
                continue
            payload = rendered.get("Payload", rendered)
            result = {
                key.removesuffix(".$"): f"<{name}.{key.removesuffix('.$')}>"
                for key in state.get("ResultSelector", {"result": None})
            }
            assert payload is not None
            data = put_path(data, state.get("ResultPath", "$"), result)
        else:
            raise NotImplementedError(f"the static walk does not model {kind} states")
        if state.get("End"):
            return visited, data
        name = state["Next"]


# ---------------------------------------------------------------- parsing


def test_definition_is_json(asl_text: str) -> None:
    document = json.loads(asl_text)
    assert isinstance(document, dict)
    assert document["StartAt"] in document["States"]


def test_placeholders_are_all_substituted(asl_text: str) -> None:
    definition = substituted(asl_text)
    assert "${" not in definition
    assert PLACEHOLDER.findall(asl_text), "the definition should take its ARNs from DefinitionSubstitutions"


def test_moto_asl_parser_accepts_the_definition(asl_text: str, asl: dict[str, Any]) -> None:
    parsed_program, _ = AmazonStateLanguageParser.parse(substituted(asl_text))
    program: Any = parsed_program  # a Program (start_at, states), typed as its EvalComponent base
    assert program.start_at.start_at_name == asl["StartAt"]
    parsed = program.states.states
    assert set(parsed) == set(asl["States"])
    kinds = {name: type(state).__name__ for name, state in parsed.items()}
    assert {name: kinds[name] for name in lambda_tasks(asl)} == dict.fromkeys(
        [*PIPELINE_ORDER, CLEANUP], "StateTaskServiceLambda"
    )
    assert kinds[FAILURE] == "StateTaskServiceSns"
    assert {s.query_language.query_language_mode.name for s in parsed.values()} == {"JSONPath"}


def test_static_analysers_accept_the_definition_for_both_workflow_types(asl_text: str) -> None:
    """What moto's CreateStateMachine runs: STANDARD and, because WorkflowType allows it, EXPRESS."""
    definition = substituted(asl_text)
    accepted = []
    for analyser in (StaticAnalyser(), ExpressStaticAnalyser()):
        analyser.analyse(definition)  # raises on a definition it rejects
        accepted.append(type(analyser).__name__)
    assert accepted == ["StaticAnalyser", "ExpressStaticAnalyser"]
    # Negative control: Express rejects what only Standard runs (a callback task), so the check can fail.
    callback = minimal(
        {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "End": True,
            "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
        }
    )
    with pytest.raises(Exception, match=r"(?i)express|waitForTaskToken|not supported"):
        ExpressStaticAnalyser().analyse(callback)


def minimal(state: dict[str, Any]) -> str:
    return json.dumps({"StartAt": "Only", "States": {"Only": state}})


def test_moto_asl_parser_rejects_a_broken_definition() -> None:
    """Negative control: the parser is not a no-op."""
    AmazonStateLanguageParser.parse(minimal({"Type": "Succeed"}))
    with pytest.raises(ASLParserException):
        AmazonStateLanguageParser.parse(minimal({"Type": "Suceed"}))


def test_express_analyser_rejects_callback_integrations() -> None:
    """Negative control for the EXPRESS check: a .waitForTaskToken integration is valid, but not for EXPRESS."""
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f", "Payload.$": "$"},
        "End": True,
    }
    StaticAnalyser().analyse(minimal(task))
    with pytest.raises(ValueError, match="Express"):
        ExpressStaticAnalyser().analyse(minimal(task))


def test_definition_is_jsonpath_only(asl: dict[str, Any]) -> None:
    def nodes(value: Any) -> Iterator[tuple[str, Any]]:
        if isinstance(value, Mapping):
            for key, item in value.items():
                yield key, item
                yield from nodes(item)
        elif isinstance(value, list):
            for item in value:
                yield from nodes(item)

    found = list(nodes(asl))
    assert [v for k, v in found if k == "QueryLanguage" and v != "JSONPath"] == []
    assert [k for k, _ in found if k in ("Arguments", "Output", "Assign")] == [], "JSONata/variables fields"
    assert [v for _, v in found if isinstance(v, str) and v.strip().startswith("{%")] == []


# ---------------------------------------------------------------- graph


def test_every_transition_names_an_existing_state(asl: dict[str, Any]) -> None:
    dangling = [
        (name, target) for name, s in asl["States"].items() for target in successors(s) if target not in asl["States"]
    ]
    assert dangling == []


def test_every_state_is_reachable(asl: dict[str, Any]) -> None:
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += successors(asl["States"][name])
    assert set(asl["States"]) - seen == set()


@pytest.mark.parametrize("execution_input", [EVENTBRIDGE_INPUT, MANUAL_INPUT], ids=["eventbridge", "manual"])
def test_steps_run_in_order_for_each_input_shape(execution_input: dict[str, Any], asl: dict[str, Any]) -> None:
    visited, output = walk(asl, execution_input)
    assert [name for name in visited if name in lambda_tasks(asl)] == PIPELINE_ORDER
    assert asl["States"][visited[-1]]["Type"] == "Succeed"
    assert FAILURE not in visited
    assert set(output) >= {"upload", "validated", "resized", "watermarked", "stored", "notified"}


def reads_key_from_event(upload: dict[str, Any]) -> bool:
    """What the validate step makes of an upload reference (the real event data class)."""
    return ValidateEvent({"upload": upload}).key_from_event


def test_upload_reference_is_taken_from_each_input_shape(asl: dict[str, Any]) -> None:
    _, from_event = walk(asl, EVENTBRIDGE_INPUT)
    assert from_event["upload"]["bucket"] == "source-bucket"
    assert from_event["upload"]["key"] == "uploads/holiday+photo.jpg"  # as in the event; the step decodes it
    assert from_event["upload"]["event_id"] == EVENTBRIDGE_INPUT["id"]
    assert reads_key_from_event(from_event["upload"]), "a key from an S3 event may be form-urlencoded"
    _, from_manual = walk(asl, MANUAL_INPUT)
    assert from_manual["upload"]["bucket"] == "source-bucket"
    assert from_manual["upload"]["key"] == "uploads/holiday photo.jpg"
    assert not reads_key_from_event(from_manual["upload"]), "a manual key is verbatim"


SAMPLE_INPUTS = sorted((ROOT / "events").glob("*.json"))


@pytest.mark.parametrize("path", SAMPLE_INPUTS, ids=[p.name for p in SAMPLE_INPUTS])
def test_sample_inputs_take_the_route_they_document(path: Path, asl: dict[str, Any]) -> None:
    """events/*.json: the two shapes run every step; an input of neither shape is rejected without a Lambda."""
    visited, _ = walk(asl, json.loads(path.read_text(encoding="utf-8")))
    ran = [name for name in visited if name in lambda_tasks(asl)]
    if path.name == "failure-invalid-input.json":
        assert ran == []
        assert visited[-2:] == [FAILURE, "Failed"]
    else:
        assert ran == PIPELINE_ORDER


def test_sample_inputs_include_both_shapes() -> None:
    assert {"s3-object-created.json", "manual-execution.json"} <= {p.name for p in SAMPLE_INPUTS}


def test_unrecognised_input_is_published_as_a_failure(asl: dict[str, Any]) -> None:
    visited, output = walk(asl, {"hello": "world"})
    assert not set(visited) & set(PIPELINE_ORDER)
    assert visited[-2:] == [FAILURE, "Failed"]
    assert output["error"]["Error"] == "InvalidInput"
    assert output["error"]["Error"] in VALIDATION_ERRORS


@pytest.mark.parametrize("failing", PIPELINE_ORDER)
def test_a_failing_step_is_published_then_fails_the_execution(failing: str, asl: dict[str, Any]) -> None:
    visited, output = walk(asl, MANUAL_INPUT, fail_at=failing)
    assert visited[-3:] == [CLEANUP, FAILURE, "Failed"], "what the step wrote is cleaned up first"
    assert visited.index(failing) == len(visited) - 4
    assert output["error"] == {"Error": "TooManyPixels", "Cause": "declared 10^9 pixels"}


# ---------------------------------------------------------------- retry and catch


def test_every_task_has_retry_and_catch(asl: dict[str, Any]) -> None:
    tasks = states_of(asl, "Task")
    assert set(lambda_tasks(asl)) | {FAILURE} == set(tasks)
    assert [name for name, state in tasks.items() if not state.get("Retry") or not state.get("Catch")] == []


@pytest.mark.parametrize("name", PIPELINE_ORDER)
def test_lambda_task_retries_service_and_transient_errors(name: str, asl: dict[str, Any]) -> None:
    retriers = asl["States"][name]["Retry"]
    service = [r for r in retriers if set(r["ErrorEquals"]) & LAMBDA_SERVICE_ERRORS]
    assert len(service) == 1
    assert set(service[0]["ErrorEquals"]) == LAMBDA_SERVICE_ERRORS
    assert len([r for r in retriers if "TransientError" in r["ErrorEquals"]]) == 1
    for retrier in retriers:
        assert retrier["BackoffRate"] > 1
        assert retrier["MaxAttempts"] >= 1
        assert retrier["MaxDelaySeconds"] >= retrier.get("IntervalSeconds", 1)
        assert retrier["JitterStrategy"] == "FULL"


@pytest.mark.parametrize("name", PIPELINE_ORDER)
def test_lambda_task_never_retries_permanent_errors(name: str, asl: dict[str, Any]) -> None:
    assert {"InvalidInput", "TooManyPixels", "SourceChanged", "ValidationError"} <= VALIDATION_ERRORS
    retried = {error for r in asl["States"][name]["Retry"] for error in r["ErrorEquals"]}
    assert retried & NOT_RETRIED == set()


def test_error_names_exist(asl: dict[str, Any]) -> None:
    """A misspelt error name in Retry or Catch matches nothing, silently."""
    pipeline_errors = {c.__name__ for c in subclasses(errors.PipelineError)}
    names = {
        error
        for state in asl["States"].values()
        for handler in state.get("Retry", []) + state.get("Catch", [])
        for error in handler["ErrorEquals"]
    }
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    # Runtime.ExitError: the Lambda runtime's name for a function process that died (it is retried);
    # IdempotencyAlreadyInProgressError: Powertools', raised while a duplicate is still notifying.
    known = {"Runtime.ExitError", IdempotencyAlreadyInProgressError.__name__}
    unknown = {
        n for n in names if not n.startswith(("States.", "Lambda.", "Sandbox.")) and n not in known | pipeline_errors
    }
    assert unknown == set()
    assert "TransientError" in pipeline_errors


def test_every_catch_goes_to_cleanup_then_publish_failure_with_the_error(asl: dict[str, Any]) -> None:
    catchers = [
        (name, c) for name, s in asl["States"].items() if name not in (FAILURE, CLEANUP) for c in s.get("Catch", [])
    ]
    assert {name for name, _ in catchers} == set(PIPELINE_ORDER)
    wrong = [(name, c) for name, c in catchers if c["Next"] != CLEANUP or c.get("ResultPath") != "$.error"]
    assert wrong == []
    cleanup = asl["States"][CLEANUP]
    assert cleanup["Next"] == FAILURE
    # A failing clean-up never replaces the step's error: it is kept apart and the failure is still published.
    assert cleanup["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.cleanup_error", "Next": FAILURE}]
    assert cleanup["Parameters"]["Payload"]["state.$"] == "$"
    for name in PIPELINE_ORDER:
        assert "States.ALL" in asl["States"][name]["Catch"][-1]["ErrorEquals"], f"{name}: some errors escape"


def test_publish_failure_publishes_to_sns_then_fails(asl: dict[str, Any]) -> None:
    state = asl["States"][FAILURE]
    assert state["Type"] == "Task"
    assert state["Resource"] == SNS_PUBLISH
    assert state["Parameters"]["TopicArn"] == "${TopicArn}"
    message = {key.removesuffix(".$"): value for key, value in state["Parameters"]["Message"].items()}
    assert {"execution", "upload", "error", "cause"} <= set(message)
    assert message["execution"] == "$$.Execution.Id"
    assert message["upload"] == "$.upload"
    assert message["error"] == "$.error.Error"
    assert message["cause"] == "$.error.Cause"
    assert state.get("ResultPath", "$") is None, "the SNS result must not replace the error"
    failed = asl["States"][state["Next"]]
    assert failed["Type"] == "Fail"
    assert failed["ErrorPath"] == "$.error.Error"
    assert failed["CausePath"] == "$.error.Cause"
    # If SNS itself fails, still fail with the original error (kept at $.error).
    assert [c["Next"] for c in state["Catch"]] == [state["Next"]]
    assert all(c.get("ResultPath") not in ("$", "$.error") for c in state["Catch"])


def test_no_lambda_between_a_failure_and_the_end(asl: dict[str, Any]) -> None:
    visited, _ = walk(asl, MANUAL_INPUT, fail_at="Validate")
    after = visited[visited.index(FAILURE) :]
    assert [n for n in after if asl["States"][n].get("Resource") == LAMBDA_INVOKE] == []


# ---------------------------------------------------------------- payloads and results

_BYTES_LIKE = re.compile(r"body|bytes|data|base64|blob|content|pixels|buffer", re.IGNORECASE)


def payload_fields(payload: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            yield f"{prefix}{key}", value
            yield from payload_fields(value, f"{prefix}{key}.")


@pytest.mark.parametrize("name", PIPELINE_ORDER)
def test_payload_carries_references_not_image_bytes(name: str, asl: dict[str, Any]) -> None:
    parameters = asl["States"][name]["Parameters"]
    assert set(parameters) == {"FunctionName", "Payload"}
    fields = list(payload_fields(parameters["Payload"]))
    assert fields
    suspicious = [(k, v) for k, v in fields if _BYTES_LIKE.search(k) or (isinstance(v, str) and _BYTES_LIKE.search(v))]
    assert suspicious == []
    literals = [(k, v) for k, v in fields if not isinstance(v, Mapping) and not k.endswith(".$")]
    assert literals == [], "only paths into the state and the context object travel"
    assert all(v.startswith(("$.", "$$.")) for k, v in fields if k.endswith(".$"))


@pytest.mark.parametrize("name", PIPELINE_ORDER)
def test_result_goes_under_a_named_key(name: str, asl: dict[str, Any]) -> None:
    state = asl["States"][name]
    assert re.fullmatch(r"\$\.[a-z_]+", state["ResultPath"]), state.get("ResultPath")
    assert state["ResultPath"] not in ("$.upload", "$.error")
    selector = state["ResultSelector"]
    assert selector
    assert all(k.endswith(".$") and v.startswith("$.Payload.") for k, v in selector.items())


def test_result_paths_are_distinct(asl: dict[str, Any]) -> None:
    paths = [state["ResultPath"] for state in lambda_tasks(asl).values()]
    assert len(set(paths)) == len(paths)


# ---------------------------------------------------------------- contract with the step code


def step_function(function_dir: Path) -> str:
    """The name of the pipeline.steps function a handler runs (``steps.<name>(...)``)."""
    tree = ast.parse((function_dir / "app.py").read_text(encoding="utf-8"))
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "steps"
    }
    assert len(calls) == 1, calls
    return calls.pop()


STEPS_TREE = ast.parse((ROOT / "layers" / "shared" / "pipeline" / "steps.py").read_text(encoding="utf-8"))
STEP_DEFS = {node.name: node for node in STEPS_TREE.body if isinstance(node, ast.FunctionDef)}


def returned_keys(function: str) -> set[str]:
    keys: set[str] = set()
    for node in ast.walk(STEP_DEFS[function]):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
            keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return keys


def test_run_step_adds_elapsed_ms() -> None:
    """Every ResultSelector also picks elapsed_ms, which run_step (not the step) adds to the result."""
    tree = ast.parse((ROOT / "layers" / "shared" / "pipeline" / "observability.py").read_text(encoding="utf-8"))
    [run_step] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run_step"]
    added = {
        key.value
        for node in ast.walk(run_step)
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict)
        for key in node.value.keys
        if isinstance(key, ast.Constant)
    }
    assert "elapsed_ms" in added


@pytest.mark.parametrize("name", PIPELINE_ORDER)
def test_result_selector_picks_fields_the_step_returns(
    name: str, asl: dict[str, Any], function_dirs: dict[str, Path]
) -> None:
    returned = returned_keys(step_function(function_dirs[f"{name}Function"])) | {"elapsed_ms"}  # run_step adds it
    selected = {v.removeprefix("$.Payload.").split(".")[0] for v in asl["States"][name]["ResultSelector"].values()}
    assert selected - returned == set()


EVENT_CLASSES = {
    "Validate": ValidateEvent,
    "Resize": ResizeEvent,
    "Watermark": WatermarkEvent,
    "Store": StoreEvent,
    "Notify": NotifyEvent,
}


@pytest.mark.parametrize("name", PIPELINE_ORDER)
def test_payload_gives_the_step_what_it_reads(name: str, asl: dict[str, Any], function_dirs: dict[str, Path]) -> None:
    handler = (function_dirs[f"{name}Function"] / "app.py").read_text(encoding="utf-8")
    event_class = EVENT_CLASSES[name]
    assert f"@event_source(data_class={event_class.__name__})" in handler
    required = set(event_class.required)
    assert required, "the step's event class should name the fields it needs"
    sent = {key.removesuffix(".$") for key in asl["States"][name]["Parameters"]["Payload"]}
    assert required - sent == set(), f"{name} needs {sorted(required - sent)}"
    properties = {n for n in dir(event_class) if isinstance(getattr(event_class, n, None), property)}
    optional = {"durations", "started"} & properties  # read with defaults by NotifyEvent
    # "execution" is read by every handler: logger.inject_lambda_context(correlation_id_path="execution").
    assert sent - required - optional - {"execution"} == set(), f"{name} is sent fields it never reads"
