"""``python -m dataauth.cli``."""

from dataauth.cli import app

app()
