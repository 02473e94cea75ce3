"""Helpers shared by the test-suite: real servers (vLLM on the CPU) and the models they serve."""
