"""A build run: its tasks, the retry policy, the private Prefect server, and what the run
reports (funnel, failures, the items it answers for, why items sit in a status, picture figures)."""
