# govflow as a container: `govflow run` on /config/govflow.toml, state and the local
# warehouse in /data. docs/deploy.md has the volumes, the signals and how this was verified.

# Build stage: the release binary, exactly from Cargo.lock.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Symbols stay (function names in backtraces), line tables do not: ~55 MB instead of ~290.
ENV CARGO_PROFILE_RELEASE_DEBUG=false
COPY . .
RUN cargo build --release --locked --bin govflow \
    && cp target/release/govflow /usr/local/bin/govflow

# Runtime stage: Debian 12 slim, the binary only, a non-root user.
FROM debian:bookworm-slim
# TLS roots are compiled into the binary (webpki-roots): no CA package needed.
RUN groupadd --system --gid 10001 govflow \
    && useradd --system --uid 10001 --gid govflow --home-dir /data --shell /usr/sbin/nologin govflow \
    && mkdir -p /config /data \
    && chown govflow:govflow /data
COPY --from=build /usr/local/bin/govflow /usr/local/bin/govflow
USER 10001:10001
WORKDIR /data
# /config: govflow.toml (read-only; its secrets may be ${file:/run/secrets/...});
# /data: the state directory and the local warehouse (relative paths resolve here).
VOLUME ["/config", "/data"]
# The status page, /api/status, /metrics, /healthz and /readyz ([status] listen = "0.0.0.0:3000").
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["govflow", "status", "--health", "--url", "http://127.0.0.1:3000"]
# SIGTERM (the default stop signal) commits the current epoch and exits 0; SIGHUP
# re-reads the configuration's secrets.
STOPSIGNAL SIGTERM
ENTRYPOINT ["govflow"]
CMD ["run", "--config", "/config/govflow.toml"]
