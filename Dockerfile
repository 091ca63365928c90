# One image for every Gatherly process: `gatherly serve <app>`, `gatherly relay <schema>`,
# `gatherly project <name>`, `gatherly migrate`. docker-compose.yml and deploy/k8s run it.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/gatherly
COPY pyproject.toml ./
COPY gatherly ./gatherly
COPY services ./services
COPY gateway ./gateway
RUN /opt/gatherly/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app gatherly
COPY --from=build /opt/gatherly /opt/gatherly
ENV PATH=/opt/gatherly/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GATHERLY_HOST=0.0.0.0 \
    GATHERLY_DATA_DIR=/app/data
WORKDIR /app
USER gatherly
# The apps' default ports (members 7481, kpi 7482, edge 7483, events 7484, engagement 7485,
# webhooks 7486, inbound 7487), the relays' metrics (7490-7493), the projectors' (7495-7497),
# the webhook sender's (7499) and, run as the NATS exporter, its metrics (7479).
EXPOSE 7479 7481 7482 7483 7484 7485 7486 7487 7490 7491 7492 7493 7495 7496 7497 7499
ENTRYPOINT ["gatherly"]
CMD ["--help"]
