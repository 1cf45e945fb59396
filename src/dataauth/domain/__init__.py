"""The department's data, read in place; and the demo domain."""
