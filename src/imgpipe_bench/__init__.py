"""Measurement of the pipeline and the local cloud: imaging, cold starts, orchestration, throughput and cost."""
