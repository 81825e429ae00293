"""Accelerator catalogue: vendor, memory, dense FP16/BF16 TFLOPS, domestic or imported, and the source."""

from suanwang.catalog.catalog import Accelerator, accelerators, find, models

__all__ = ["Accelerator", "accelerators", "find", "models"]
