"""Operation kinds: each module knows how to describe, execute and disclose its requests."""
