"""Prefect flows: thin wiring of the stages in `builder`, one coarse task per stage x shard."""
