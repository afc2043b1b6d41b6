"""The database driver (SQLite | PostgreSQL) every package's SQL runs on, and the migration runner.

Packages own their tables and queries (per-aggregate stores written once in SQL with `$n`
placeholders); this package only connects, runs statements, translates errors into
`StoreError`/`ConstraintViolation`, and applies numbered migrations.
"""
