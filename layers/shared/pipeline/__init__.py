"""Shared code of the image pipeline's Lambda functions.

Pure imaging and decision logic lives in modules that never import boto3
(``formats``, ``inspection``, ``imaging``, ``watermark``, ``encoding``, ``keys``,
``messages``); ``storage`` is the only module that talks to AWS, and ``steps``
wires the two together for the handlers in ``functions/``.
"""
