"""The backends: the only modules that import imapclient, googleapiclient, google-auth and sqlite3."""
