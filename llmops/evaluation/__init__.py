"""The evaluation harness: suites of cases and assertions, scored for quality and hallucination.

suites (YAML loading) -> runner (case × prompt × model, through client and cache) ->
assertions / faithfulness / judge / semantic (grading) -> storage (runs in the database)
-> reports (tables, comparisons, JUnit). `service.run_suite_async` runs, compares and
stores one suite with a model client; `llmops.gateway.clients` supplies the gateway as
that client, `llmops.pytest_plugin` makes suites pytest items, and
`llmops.testing.assert_eval` is for hand-written tests.
"""
