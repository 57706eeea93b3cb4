# The build of every function, included by functions/<name>/Makefile; sam build (Metadata:
# BuildMethod: makefile) runs its build-<LogicalId> target in a copy of that function's directory.
# The handler ships with unchecked hash-based .pyc files: a zip keeps modification times to 2 s, so
# timestamp-based ones would be stale in Lambda, and /var/task is read-only, so every cold start
# would compile the sources again.
PYTHON ?= python3.12

.PHONY: handler
handler:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12) and "the .pyc files must come from Python 3.12")'
	cp *.py "$(ARTIFACTS_DIR)/"
	$(PYTHON) -m compileall -q -f --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)"
