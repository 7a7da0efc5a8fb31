"""mirbench: build multi-image safety benchmarks (MIR-SafetyBench style)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mirbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
