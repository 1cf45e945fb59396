"""Who is asking: an operator of the catalog, or a department (数源部门).

The spine and every administrative step authenticate through here, so a token means
the same everywhere: verified (``tokens.py``), then matched to its operator or role.
"""

from __future__ import annotations

from dataauth.catalog.store import Catalog, OperatorInfo
from dataauth.errors import forbidden
from dataauth.identity.tokens import Caller, TokenVerifier

DEPARTMENT = "department"
"""The role a department's token holds."""
REGULATOR = "regulator"
"""The role a regulator's token holds: the whole log, every filing."""


class Access:
    def __init__(self, tokens: TokenVerifier, catalog: Catalog) -> None:
        self.tokens = tokens
        self.catalog = catalog

    def caller(self, authorization: str | None) -> Caller:
        """Whoever holds a valid token (a regulator, a reviewer, an operator)."""
        return self.tokens.verify(authorization)

    def operator(self, authorization: str | None) -> tuple[Caller, OperatorInfo]:
        """The caller, and the operator it is in the catalog."""
        caller = self.tokens.verify(authorization)
        operator = self.catalog.operator(caller.subject)
        if operator is None:
            raise forbidden("unknown_operator", "the token's subject is not a known operator")
        return caller, operator

    def department(self, authorization: str | None) -> Caller:
        """The caller, who must hold a department's role."""
        caller = self.tokens.verify(authorization)
        if DEPARTMENT not in caller.roles:
            raise forbidden("not_allowed", "this needs a department's token")
        return caller
