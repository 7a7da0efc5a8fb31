"""A versioned release: export of approved items, the published row format, the
dataset card, and publishing to the Hub."""
