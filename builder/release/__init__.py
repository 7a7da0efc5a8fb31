"""A versioned release: export of approved items, the published row format, staging, the
dataset card, and publishing to the Hub."""
