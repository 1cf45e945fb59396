"""Accounts the spine charges before an answer is computed: subjects' disclosure budgets."""
