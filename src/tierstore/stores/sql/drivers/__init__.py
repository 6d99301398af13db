"""Statement execution for the SQL store: one small driver per database client."""
