"""Judge calibration: how well a judge agrees with people on labelled answers.

`labels` reads a human-labelled set through its profile (`taxonomy/labels/*.yaml`), `metrics`
computes agreement figures with bootstrap intervals, `run` judges the labelled answers with
every configured judge, `records` keeps the results in the store, and `figures` is the short
form an attack-success table quotes next to its rates.
"""
