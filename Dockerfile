# syntax=docker/dockerfile:1
# The gateway's image: built in one stage, run in a slim one as a user with no rights
# beyond its data volume. No key is in the image: a deployment mounts its token and
# consent issuers' JWKS files at /etc/dataauth/issuers (read only), and the gateway
# refuses to start without them; the data volume keeps the subject-hash and audit
# signing keys (see the README's deployment section).

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY policies ./policies
RUN python -m venv /opt/dataauth \
 && /opt/dataauth/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/dataauth/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/dataauth --create-home dataauth
COPY --from=build /opt/dataauth /opt/dataauth
ENV PATH=/opt/dataauth/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATAAUTH_DATA_DIR=/var/lib/dataauth \
    DATAAUTH_HOST=0.0.0.0 \
    DATAAUTH_PORT=8080 \
    DATAAUTH_LOG_FORMAT=json \
    DATAAUTH_JWKS_FILE=/etc/dataauth/issuers/operators.jwks.json \
    DATAAUTH_CONSENT_JWKS_FILE=/etc/dataauth/issuers/consent.jwks.json
USER dataauth
WORKDIR /var/lib/dataauth
VOLUME ["/var/lib/dataauth"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 CMD ["dataauth", "health"]
ENTRYPOINT ["dataauth", "serve"]
CMD ["--workers", "2"]
