"""The migration of one mailbox: scan -> fetch -> import -> record (migration.Migration), speaking only the
contract. Its helpers: the labels a run needs, the bound on bytes in flight, which account a token is for,
the guard against a lost state file, the run's results, and the reporter of a run nobody watches."""
