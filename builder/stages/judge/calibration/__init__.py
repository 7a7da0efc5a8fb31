"""Judge calibration: how well a judge agrees with people on labelled answers.

`labels` reads a human-labelled set through its profile (`taxonomy/labels/*.yaml`), `metrics`
computes agreement figures with bootstrap intervals, `run` judges the labelled answers with
every configured judge, and `records` keeps the results in the store and hands the latest one
of each judge to the attack-success tables (`builder.stages.attack.summary.CalibrationSummary`).
"""
