"""Policies: the Rego bundle, the decision contract and the engines that evaluate it."""
