"""The schema, as ordered SQL files `NNNN_name.sql` (applied by `openclaw.db.migrate`)."""
