# DOFS, the embedded shape: `dofs serve`, one process on one SQLite file.
#
#   docker build -t dofs .
#   docker run -d -p 8080:8080 -v dofs-data:/var/lib/dofs dofs
#
# Checked without a container daemon by scripts/test-packaging.sh (in .ci/run): hadolint
# over this file, and the runtime stage's layout (user, paths, arguments, environment,
# health check) run as it is on the host. scripts/test-image.sh builds the image with
# buildah (with CARGO_PROFILE=release, to save the link-time optimization's minutes) and
# runs it with podman. See the README, "Running in production".

ARG RUST_VERSION=1.94.1
# The two base images. scripts/test-image.sh, where no registry can be reached, passes
# images it made itself from a debootstrapped Debian bookworm.
ARG BUILD_IMAGE=rust:${RUST_VERSION}-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- build: the Rust toolchain, the dofs binary only --------------------------------------
FROM ${BUILD_IMAGE} AS build
# The workspace's `dist` profile: release with link-time optimization (Cargo.toml).
# `release` builds sooner; `dev` and `test` would not work here (their binaries are
# written to target/debug).
ARG CARGO_PROFILE=dist
WORKDIR /src
# The whole workspace: cargo reads every member's manifest even to build one package.
COPY . .
RUN cargo build --profile "${CARGO_PROFILE}" --locked -p dofs-cli --bin dofs \
    && install -D -m 0755 "target/${CARGO_PROFILE}/dofs" /out/dofs

# --- runtime: glibc, the binary, CA certificates, an unprivileged user ----------------------
FROM ${RUNTIME_IMAGE} AS runtime
# SQLite is compiled into the binary and TLS is rustls: the CA bundle is all it needs
# (for an https fulfillment service, webhooks or alert notifications).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/dofs /usr/local/bin/dofs
RUN groupadd --system --gid 10001 dofs \
    && useradd --system --uid 10001 --gid dofs --home-dir /var/lib/dofs --no-create-home \
        --shell /usr/sbin/nologin dofs \
    && mkdir -p /var/lib/dofs \
    && chown dofs:dofs /var/lib/dofs \
    && chmod 0750 /var/lib/dofs
ENV DOFS_LOG_FORMAT=json \
    RUST_LOG=info
USER 10001:10001
WORKDIR /var/lib/dofs
VOLUME ["/var/lib/dofs"]
EXPOSE 8080
# dofs runs as PID 1 (exec form): it handles SIGTERM itself, answers /ready 503, finishes
# the requests and the attempts in flight, and exits 0. Start-up checks the database
# (PRAGMA integrity_check, about a second per 270 MB) before it listens: the start period
# leaves a few GB time for it.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["dofs", "probe", "http://127.0.0.1:8080/ready"]
ENTRYPOINT ["dofs"]
CMD ["serve", "--bind", "0.0.0.0:8080", "--data-dir", "/var/lib/dofs"]
