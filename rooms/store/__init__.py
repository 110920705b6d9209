"""Persistence: SQLModel tables, Alembic migrations and the stores over them.

SQLite and PostgreSQL are two URLs to the same code (`make_engine`).
"""
