"""CLI command groups; see llmops/cli.py for the contract."""
