# Herald, for production: `herald run` against the QQ platform, configured by a TOML file mounted
# at /etc/herald/herald.toml and HERALD_* variables (secrets belong in variables, not in the image).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin herald

USER herald
# The webhook receiver ([qq] webhook_port) and the console ([console] port), when enabled.
EXPOSE 8080 8095
ENTRYPOINT ["herald"]
CMD ["run", "--config", "/etc/herald/herald.toml"]
