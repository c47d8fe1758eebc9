"""Business logic. Services take a session and a principal, own their transactions, and raise
domain errors (control_api.errors); they never touch the Flask request."""
