"""checkout's tables (products, sales, orders, webhook events) as numbered SQL migrations.

Numbers are one sequence across every package's schema folder (core/db/migrations.py).
"""
