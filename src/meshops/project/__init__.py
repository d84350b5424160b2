"""The project workflow (C1, C2): a git repository as the source of truth, plan and apply,
checks for CI, promotion gates and webhooks (see docs/workflow.md)."""
