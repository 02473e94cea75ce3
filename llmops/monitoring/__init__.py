"""Monitoring: what deployed prompts and models do over time.

capture (a sampled share of calls keeps its redacted text, beside the ledger) ->
scoring (online evals on that sample: faithfulness, guardrail verdicts, a suite's
assertions, stored per request) -> features, stats and drift (a recent window against a
reference window, per prompt version x model and overall) -> alerts (a webhook, once per
window) and worker (the gateway's background loop that keeps /metrics' gauges fresh).
Nothing here runs on a request's path but `PayloadCapture.sampled` and `.keep`.
"""
