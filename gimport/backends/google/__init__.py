"""The Google side: Gmail API, OAuth for one user, a service account for a campus."""
