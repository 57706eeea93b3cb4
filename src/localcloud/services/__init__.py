"""The emulated AWS services of the local cloud, one module per service."""
