"""core's tables (accounts, meta) as numbered SQL migrations; the runner is core/db/migrations.py."""
