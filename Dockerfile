# syntax=docker/dockerfile:1
# One image for every role of seckill-server and for the `seckill` CLI.
#   docker build -t seckill-rs .
#   docker run -p 8080:8080 seckill-rs                       # every role, every backend in memory
#   docker run seckill-rs seckill-server --roles api         # one role (see docs/operations.md)
#   docker run seckill-rs seckill migrate --database postgres://…
# Stage 1 builds the dependencies alone, from the manifests and stub sources, so that a change of
# the source rebuilds only the workspace's crates; stage 2 builds those; stage 3 is the runtime:
# distroless (glibc, CA certificates, no shell), as a non-root user.

FROM rust:1.95-bookworm AS deps
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY seckill-core/Cargo.toml seckill-core/
COPY seckill-store/Cargo.toml seckill-store/
COPY seckill-broker/Cargo.toml seckill-broker/
COPY seckill-pay/Cargo.toml seckill-pay/
COPY seckill-server/Cargo.toml seckill-server/build.rs seckill-server/
COPY seckill-cli/Cargo.toml seckill-cli/
COPY seckill-chaos/Cargo.toml seckill-chaos/
COPY examples/Cargo.toml examples/
COPY proto proto
# Stub targets where the manifests expect them; the build of the real ones replaces them.
RUN set -eu; \
    for c in seckill-core seckill-store seckill-broker seckill-pay seckill-server seckill-chaos examples; do \
      mkdir -p "$c/src" && echo '' > "$c/src/lib.rs"; \
    done; \
    mkdir -p seckill-cli/src seckill-chaos/src seckill-server/src; \
    for m in seckill-server seckill-cli seckill-chaos; do echo 'fn main() {}' > "$m/src/main.rs"; done; \
    mkdir -p seckill-core/benches seckill-store/benches seckill-broker/benches; \
    for b in seckill-core/benches/buy seckill-store/benches/redis_reserve \
             seckill-store/benches/pg_order_sink seckill-broker/benches/relay; do \
      echo 'fn main() {}' > "$b.rs"; \
    done; \
    cargo build --release --locked -p seckill-server -p seckill-cli

FROM deps AS build
COPY . .
# Newer than the stubs, so cargo rebuilds the workspace's crates (and only those).
RUN find seckill-* examples -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p seckill-server -p seckill-cli \
    && install -D -m 0755 target/release/seckill-server /out/seckill-server \
    && install -D -m 0755 target/release/seckill /out/seckill

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# Listen on every interface inside the container; the roles, backends and secrets come from
# SECKILL_* variables or a mounted file (SECKILL_CONFIG), see docs/operations.md.
ENV SECKILL_LISTEN=0.0.0.0:8080 \
    SECKILL_GRPC_LISTEN=0.0.0.0:9090 \
    SECKILL_SERVER=http://127.0.0.1:8080
EXPOSE 8080 9090
# Liveness only (GET /health): a backend that is down shows in /ready, not as a dead container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/seckill", "alive"]
ENTRYPOINT []
CMD ["/usr/local/bin/seckill-server"]
