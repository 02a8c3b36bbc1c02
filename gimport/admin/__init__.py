"""Admin mode: many mailboxes, one service account, the same engine (docs/admin.md).

users (the users file, source logins, each user's settings), shards (which users a process takes),
report (per-user files, outcomes, the report from the state files), fanout (the one pool of users),
run (`admin run`), summary (what a run returns), checks (`admin verify` / `admin cleanup`). Returns data;
never prints.
"""
