"""The state file, SQLite: the only package that imports sqlite3. store.StateStore writes (the schema, its
migration, every record), read.StateReader answers every query, disk turns what SQLite and the file system
say into one line with what to do."""
