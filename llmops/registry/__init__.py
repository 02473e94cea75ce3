"""The prompt registry: versioned, immutable prompt templates with movable labels.

Entry point: `llmops.Registry` (llmops.registry.service). Modules, one job each:
models (tables), refs (references), content (validation, hashing), templates
(sandboxed Jinja2), store (transactions and queries), sync and files (prompts as
YAML), diff, cache, views (what callers receive).
"""
