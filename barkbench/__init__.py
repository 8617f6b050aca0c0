"""barkbench: see, measured, why attention beats recurrence on long context."""

__version__ = "0.2.0"
