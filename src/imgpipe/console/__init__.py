"""The imgpipe console: a web console for the local cloud (``imgpipe serve``) and for a deployed stack
(``imgpipe console --stack NAME``). Flask and Jinja2 on the server, htmx and dagre in the browser.

``backend`` reaches the stack (its outputs and AWS clients), ``executions``, ``history`` and ``graph``
read Step Functions, ``uploads`` the upload API and the destination, ``messages`` the topic and the
dead-letter queue; ``app`` and the ``views_*`` modules are the pages; ``server`` runs it all.
"""
