"""Alembic migrations of the chikanemail schema."""
