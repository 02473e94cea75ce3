"""The prompt registry: versioned, immutable prompt templates with movable labels.

Entry point: `llmops.Registry` (llmops.registry.service). Modules, one job each:
models (tables), refs (references), content (validation, hashing), templates
(sandboxed Jinja2), store (transactions and queries), files (prompts as YAML; the
service syncs them), diff, cache, views (what callers receive).
"""
