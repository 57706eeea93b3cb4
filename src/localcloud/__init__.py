"""The embedded local cloud: runs template.yaml on one machine, with no AWS account and no Docker."""
