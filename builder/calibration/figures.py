"""The short form of a calibration that every attack-success table quotes (card, stats, CLI)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

NOT_CALIBRATED = "judge not calibrated"


class CalibrationSummary(BaseModel):
    """A judge's latest calibration on one config hash: who, against what, how well."""

    judge: str
    config_hash: str
    task: str  # the class the labels mark: unsafe, or refusal
    label_set: str
    label_set_hash: str
    n: int
    kappa: float | None  # None: undefined (judge and people each used a single class)
    f1: float
    calibrated_at: datetime

    def line(self) -> str:
        kappa = "n/a" if self.kappa is None else f"{self.kappa:.2f}"
        return f"kappa {kappa}, F1 {self.f1:.2f}, n {self.n}, label set `{self.label_set}`"
