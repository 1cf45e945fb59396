"""Identity: who is calling (operator JWTs) and the development issuer."""
