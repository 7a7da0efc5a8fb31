"""What the in-process `transformers` tester shares: loading a model folder (`loading`) and
answering a batch of requests with it (`generation`). Not a backend itself (a sub-package of
the attack stage is not searched for backends)."""
