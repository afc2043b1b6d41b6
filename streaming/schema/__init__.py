"""streaming's tables (streams and the products each shows) as numbered SQL migrations.

Numbers are one sequence across every package's schema folder (core/db/migrations.py).
"""
