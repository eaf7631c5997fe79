# One image with every Keel binary; the container's command picks the service:
#   keel-handler, keel-projector, keel-query, keel-admin, or `keel …` (the CLI).
# deploy/compose.yaml and deploy/k8s/ run it; tests/deploy.rs checks that every binary they
# run is built and copied here.

# The builder: the workspace's toolchain (rust-version 1.89 at least, edition 2024) on the
# same Debian release as the runtime, so the binaries link against the glibc they run with.
FROM rust:1.95-trixie AS builder

# rdkafka builds its bundled librdkafka with cmake (features cmake-build, tokio; no ssl, no
# sasl, no curl) and links zlib through libz-sys, which finds the system one with pkg-config.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The caches keep the registry and the build between image builds; the binaries are copied
# out of the cached target/ in the same step, since a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin keel-handler \
        --bin keel-projector \
        --bin keel-query \
        --bin keel-admin \
        --bin keel \
    && mkdir -p /out \
    && cp target/release/keel-handler target/release/keel-projector target/release/keel-query \
        target/release/keel-admin target/release/keel /out/

# The runtime: the binaries, CA certificates, curl for the compose healthchecks, and a
# non-root user whose home holds the development keys and the KMS file when volumes are
# mounted there (a named volume starts with the image's owner and mode: keel, 0700).
FROM debian:trixie-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 keel \
    && useradd --system --uid 10001 --gid keel --home-dir /var/lib/keel --shell /usr/sbin/nologin keel \
    && mkdir -p /var/lib/keel/dev /var/lib/keel/keys \
    && chown -R keel:keel /var/lib/keel \
    && chmod -R 0700 /var/lib/keel

COPY --from=builder /out/keel-handler /out/keel-projector /out/keel-query /out/keel-admin /out/keel /usr/local/bin/
# Every domain's Avro schemas, from which `keel command send` encodes a command given as JSON.
COPY --from=builder /src/schemas /usr/share/keel/schemas
ENV KEEL_SCHEMAS=/usr/share/keel/schemas

USER 10001:10001
WORKDIR /var/lib/keel

# No entrypoint: compose and the k8s manifests name the binary as the command.
CMD ["keel", "--help"]
