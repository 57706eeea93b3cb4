"""Step Functions: moto's executing backend (its ASL interpreter is LocalStack's), with its gaps closed.

``executions``: state machines from CloudFormation, starting executions (mocked test cases included),
watching and stopping them. ``interpreter``: how the interpreter runs a definition (time, nested
executions, Fail states, task clients, parsing). ``mock_config``: Step Functions Local's mock files.
"""
