"""Helpers for the template tests: walking CloudFormation values, resolving them offline, settings contracts.

Nothing here talks to AWS. ``Resolver`` turns intrinsic functions into the plain strings
CloudFormation would produce, with parameters taken from their defaults (or overrides) and
resources given recognisable dummy names and ARNs.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

from localcloud import sam
from pipeline import settings
from pipeline.models import ObjectRef
from pipeline.storage import S3Store

ROOT: Final = sam.ROOT
ASL_PATH: Final = ROOT / "statemachines" / "image_pipeline.asl.json"
SETTINGS_PATH: Final = Path(settings.__file__)
REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"

#: ``${Name}`` and ``${Name.Attr}`` in a Fn::Sub string or an ASL definition (``${!Literal}`` is an escape).
PLACEHOLDER: Final = re.compile(r"\$\{(?!!)([^}]+)\}")

#: Each Lambda task state of the pipeline's definition -> the AWS::Serverless::Function it invokes.
STATE_FUNCTIONS: Final = {
    "Validate": "ValidateFunction",
    "Resize": "ResizeFunction",
    "Watermark": "WatermarkFunction",
    "Store": "StoreFunction",
    "Notify": "NotifyFunction",
    "Remove Outputs": "RemoveFunction",
    "Cleanup": "CleanupFunction",
}

#: The helpers of settings.py that read one environment variable: ``helper(env, "NAME", default...)``.
_ENV_READERS: Final = frozenset({"_get", "_int", "_float", "_prefix"})


def listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def of_type(resources: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in resources.items() if res.get("Type") == kind}


def props(resources: Mapping[str, Any], name: str) -> dict[str, Any]:
    return dict(resources[name].get("Properties", {}))


def walk(value: Any) -> Iterator[Any]:
    """Every node of a JSON-like value, the value itself first."""
    yield value
    if isinstance(value, Mapping):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def references(value: Any) -> set[str]:
    """Logical ids and parameter names a value refers to (Ref, Fn::GetAtt, Fn::Sub); pseudo parameters left out."""
    return {name for name in _references(value) if not name.startswith("AWS::")}


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, Mapping):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            return {value["Ref"]}
        if set(value) == {"Fn::GetAtt"}:
            att = value["Fn::GetAtt"]
            return {att.split(".")[0] if isinstance(att, str) else att[0]}
        if set(value) == {"Fn::Sub"}:
            sub = value["Fn::Sub"]
            text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
            found |= {m.split(".")[0] for m in PLACEHOLDER.findall(text)} - set(variables)
            for item in variables.values():
                found |= _references(item)
            return found
        for item in value.values():
            found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


class Resolver:
    """Resolves intrinsic functions the way CloudFormation would, offline and with dummy physical ids."""

    def __init__(self, cfn: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> None:
        self.resources: Mapping[str, Any] = cfn["Resources"]
        self.values: dict[str, str] = {
            name: str(definition["Default"])
            for name, definition in cfn.get("Parameters", {}).items()
            if "Default" in definition
        }
        self.values.update(parameters or {})
        self.values.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"})

    def ref(self, name: str) -> str:
        if name in self.values:
            return self.values[name]
        kind = self.resources[name]["Type"]  # KeyError: a Ref to nothing
        return {
            "AWS::S3::Bucket": f"{name.lower()}-{ACCOUNT}",
            "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}",
            "AWS::SQS::Queue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
            "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
            "AWS::Lambda::LayerVersion": f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}:1",
            "AWS::KMS::Key": f"{name.lower()}-key-id",
        }.get(kind, name)

    def getatt(self, name: str, attribute: str) -> str:
        kind = self.resources[name]["Type"]
        if attribute == "Arn":
            if kind == "AWS::S3::Bucket":
                return f"arn:aws:s3:::{self.ref(name)}"
            if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine", "AWS::Lambda::LayerVersion"):
                return self.ref(name)
            service = kind.split("::")[1].lower()
            return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}"
        if attribute in ("TopicName", "QueueName"):
            return name
        return f"{name}.{attribute}"

    def _placeholder(self, expression: str, variables: Mapping[str, Any]) -> str:
        if expression in variables:
            return str(self(variables[expression]))
        if "." in expression and not expression.startswith("AWS::"):
            name, attribute = expression.split(".", 1)
            return self.getatt(name, attribute)
        return self.ref(expression)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            if set(value) == {"Ref"}:
                return self.ref(value["Ref"])
            if set(value) == {"Fn::GetAtt"}:
                att = value["Fn::GetAtt"]
                name, attribute = att.split(".", 1) if isinstance(att, str) else att
                return self.getatt(name, attribute)
            if set(value) == {"Fn::Sub"}:
                sub = value["Fn::Sub"]
                text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
                return PLACEHOLDER.sub(lambda m: self._placeholder(m.group(1), variables), text)
            if set(value) == {"Fn::Join"}:
                separator, items = value["Fn::Join"]
                return separator.join(str(self(item)) for item in items)
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        return value


def constraint_violations(definition: Mapping[str, Any], value: str) -> list[str]:
    """Why CloudFormation would reject ``value`` for a parameter (empty when it would accept it)."""
    errors: list[str] = []
    allowed = definition.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        errors.append(f"{value!r} is not in AllowedValues {allowed}")
    if definition["Type"] == "Number":
        try:
            number = float(value)
        except ValueError:
            return [*errors, f"{value!r} is not a number"]
        if "MinValue" in definition and number < float(definition["MinValue"]):
            errors.append(f"{value} < MinValue {definition['MinValue']}")
        if "MaxValue" in definition and number > float(definition["MaxValue"]):
            errors.append(f"{value} > MaxValue {definition['MaxValue']}")
    else:
        pattern = definition.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            errors.append(f"{value!r} does not match AllowedPattern {pattern!r}")
        if "MinLength" in definition and len(value) < int(definition["MinLength"]):
            errors.append(f"{value!r} is shorter than MinLength")
        if "MaxLength" in definition and len(value) > int(definition["MaxLength"]):
            errors.append(f"{value!r} is longer than MaxLength")
    return errors


# ---------------------------------------------------------------- settings contract


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every variable name the settings code asks for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key, default=None):  # unannotated: Mapping.get's overloads accept it as is
        self.read.add(key)
        return self._values.get(key, default)


def settings_classes(app: Path) -> list[type[Any]]:
    """The settings classes a handler module builds at import time (``Name.from_env()`` calls)."""
    tree = ast.parse(app.read_text(encoding="utf-8"))
    names = [
        node.func.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "from_env"
        and isinstance(node.func.value, ast.Name)
    ]
    return [getattr(settings, name) for name in names]


def _from_env_defs() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(SETTINGS_PATH.read_text(encoding="utf-8"))
    found: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "from_env":
                    found[node.name] = item
    return found


def env_names_in_source(class_name: str) -> tuple[set[str], set[str]]:
    """(every variable, the variables without a default) that ``class_name.from_env`` reads, from settings.py."""
    defs = _from_env_defs()
    every: set[str] = set()
    required: set[str] = set()
    for node in ast.walk(defs[class_name]):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name_arg = node.args[1] if len(node.args) > 1 else None
        if isinstance(func, ast.Name) and func.id in _ENV_READERS and isinstance(name_arg, ast.Constant):
            every.add(str(name_arg.value))
            if func.id == "_get" and len(node.args) == 2 and not node.keywords:
                required.add(str(name_arg.value))
        elif isinstance(func, ast.Attribute) and func.attr == "from_env" and isinstance(func.value, ast.Name):
            nested_every, nested_required = env_names_in_source(func.value.id)
            every |= nested_every
            required |= nested_required
        elif isinstance(func, ast.Attribute) and func.attr == "get" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.isupper():
                every.add(first.value)
    return every, required


def read_by(classes: list[type[Any]], env: Mapping[str, str]) -> set[str]:
    """Build every settings class from ``env`` (raising ConfigurationError on a bad value); the names read."""
    recorder = RecordingEnv(env)
    for cls in classes:
        cls.from_env(recorder)
    return recorder.read


def json_object(text: str) -> dict[str, Any]:
    """A definition file's text as the JSON object it must be."""
    document = json.loads(text)
    assert isinstance(document, dict)
    return document


# ---------------------------------------------------------------- an in-memory S3 for the static walk


class MemoryS3(S3Store):
    """The S3Store operations of the Validate and Cleanup steps, over one in-memory versioned source bucket.

    HEAD answers as S3 does for a single-part upload: the ETag is the MD5 of the body, each write is
    a new VersionId, and a deleted key has no current version. Every other bucket (staging,
    destination) is empty; deletes there are recorded. An operation this class does not model
    reaches the (absent) client and fails, so a step that starts calling something new is noticed.
    """

    def __init__(self, bucket: str, objects: Mapping[str, bytes] | None = None) -> None:
        super().__init__(cast(Any, None))
        self.bucket = bucket
        self.versions: dict[str, list[tuple[str, bytes]]] = {}
        self.deleted: list[tuple[str, str]] = []
        self.listed: list[tuple[str, str]] = []
        for key, body in (objects or {}).items():
            self.put(key, body)

    def put(self, key: str, body: bytes) -> str:
        history = self.versions.setdefault(key, [])
        version = f"v{len(history) + 1}.{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        history.append((version, body))
        return version

    def remove(self, key: str) -> None:
        """A delete in a versioned bucket: a delete marker becomes the current version."""
        self.versions.setdefault(key, []).append(("", b""))

    def current(self, bucket: str, key: str) -> dict[str, Any] | None:
        history = self.versions.get(key) if bucket == self.bucket else None
        if not history or not history[-1][0]:
            return None
        version, body = history[-1]
        return {
            "ETag": f'"{hashlib.md5(body).hexdigest()}"',  # S3: the ETag of a single-part upload
            "ContentLength": len(body),
            "VersionId": version,
            "LastModified": datetime(2026, 1, 1, tzinfo=UTC),
            "ContentType": "binary/octet-stream",
        }

    def read_version(self, ref: ObjectRef, byte_range: str | None = None) -> bytes:
        assert ref["bucket"] == self.bucket, ref
        [body] = [b for v, b in self.versions.get(ref["key"], []) if v and v == ref.get("version_id")]
        if byte_range is None:
            return body
        start, end = byte_range.removeprefix("bytes=").split("-")
        if not start:
            return body[-int(end) :]
        return body[int(start) : int(end) + 1]

    def read_json_tagged(self, bucket: str, key: str) -> tuple[Any | None, str | None]:
        assert bucket != self.bucket, "nothing reads a document from the source bucket"
        return None, None

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        self.listed.append((bucket, prefix))
        return []

    def delete(self, bucket: str, keys: Sequence[str]) -> None:
        assert bucket != self.bucket, "nothing deletes from the source bucket"
        self.deleted.extend((bucket, key) for key in keys)
