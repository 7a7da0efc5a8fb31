"""Attention entropy of an in-process tester's answers, and how unsafe answers compare with safe
ones (MIR-SafetyBench's white-box finding: unsafe generations show lower attention entropy).

- `measure`: the definition, on attention rows (pure tensor arithmetic), and the recorder that
  collects those rows from a model's decoder layers while it generates.
- `compare`: the report statistics over (label, entropy, relation) records: means with seeded
  bootstrap 95% intervals, a Mann-Whitney U test, per relation; `plot` draws the two
  distributions.
- `records`: the records of a store's judged answers (the attack loop's answers table).

The paper did not publish its exact definition; ours is written down in `measure` and in the
README (section "Attention entropy"), and its layer range and normalisation are settings.
"""
