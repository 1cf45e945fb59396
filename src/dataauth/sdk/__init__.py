"""Client helpers for operators and regulators (he: encrypted scoring)."""
