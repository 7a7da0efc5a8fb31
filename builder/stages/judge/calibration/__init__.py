"""Judge calibration: how well a judge agrees with people on labelled answers.

`labels` reads a label-set profile (`taxonomy/labels/*.yaml`) and `rows` its rows, `metrics`
computes agreement figures with bootstrap intervals, `run` judges the labelled answers with
every configured judge (each row's prediction kept), and `quote` records the results in the
store and chooses the one an attack-success table quotes for each judge config and policy
(`builder.stages.attack.summary.CalibrationSummary`).
"""
