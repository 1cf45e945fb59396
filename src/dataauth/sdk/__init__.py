"""Clients of a running gateway: ``client`` for its routes, ``he`` for encrypted scoring."""

from dataauth.sdk.client import Client, GatewayError, GatewayUnreachable

__all__ = ["Client", "GatewayError", "GatewayUnreachable"]
