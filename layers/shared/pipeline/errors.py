"""Error types of the pipeline.

The class name of an exception raised by a handler becomes the ``errorType`` that
the Lambda runtime reports, which Step Functions uses as the state's error name:
``Retry`` and ``Catch`` in ``statemachines/image_pipeline.asl.json`` match these names.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class ValidationError(PipelineError):
    """The upload can never be processed as it is. Never retried."""


class InvalidInput(ValidationError):
    """The step's input does not have the expected shape."""


class EmptyObject(ValidationError):
    """The uploaded object has zero bytes."""


class UnsupportedFormat(ValidationError):
    """The content is not an image format the pipeline reads (sniffed from the bytes)."""


class CorruptImage(ValidationError):
    """The content claims to be an image but cannot be decoded (corrupt or truncated)."""


class ObjectTooLarge(ValidationError):
    """The upload has more bytes than MAX_UPLOAD_BYTES."""


class TooManyPixels(ValidationError):
    """The image declares more pixels than MAX_PIXELS (a decompression bomb guard)."""


class UnsupportedDimensions(ValidationError):
    """A rendition would not fit an output format's limits (``encoding.SIZE_LIMITS``: JPEG 65,500 px a side)."""


class SourceMissing(ValidationError):
    """The source object no longer exists."""


class SourceChanged(ValidationError):
    """The source object was replaced after validation (its ETag changed).

    The new upload has an event and an execution of its own.
    """


class TransientError(PipelineError):
    """A failure that is expected to pass (throttling, a 5xx, a dropped connection). Retried."""


class InternalError(PipelineError):
    """An exception the pipeline did not expect: a defect. Not retried; its stack trace is in the function's log."""


class ConfigurationError(PipelineError):
    """An environment variable is missing or invalid. Raised at cold start."""
