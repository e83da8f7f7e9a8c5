"""The database schema, per engine: ``sqlite.py`` creates the embedded file's tables and adds later columns
to existing user databases in place; ``postgresql/NNNN_name.sql`` are plain versioned SQL files applied in
order by server/db_postgres.py and recorded in ``schema_migrations``."""
