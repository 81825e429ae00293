"""suanwang (算网): a regional compute-power network platform."""

__version__ = "0.1.0"
