"""PostgreSQL adapter (asyncpg): migrations, reads, the group-commit writer and admin helpers."""
