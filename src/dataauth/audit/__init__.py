"""The audit log: entries committed before any result leaves, and later, proofs of them."""
