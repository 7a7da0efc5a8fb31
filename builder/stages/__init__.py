"""The pipeline: the ordered list of stages (`pipeline`), their shared base (`base`), the
per-process workspace they open, and one module or package per stage."""
