# syntax=docker/dockerfile:1
# assertd container image: build with cargo, run from distroless as non-root.
#   docker build -t assertd:0.1.0 .
# protoc is vendored (protoc-bin-vendored) and the rust image has the C
# compiler mimalloc and SQLite need, so the builder needs nothing else.
#
# Base images are pinned by digest (reproducible, reviewable builds; the
# tag says what it was). This machine reaches no registry: the digests are
# the ones several public projects' Dockerfiles pin for these tags. Check
# and refresh them where a registry is reachable, with
# `docker buildx imagetools inspect <tag>`, and pass newer ones with
# --build-arg RUST_IMAGE=... / RUNTIME_IMAGE=... (scripts/test refuses an
# unpinned default).

ARG RUST_IMAGE=rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

FROM ${RUST_IMAGE} AS build
# Cargo features of the assertd package: empty (ring verifies every
# signature), or aws-lc-rs (assertion signatures on aws-lc-rs: faster ES384
# and RSA; docs/operations.md, "The signature library").
ARG FEATURES=""
WORKDIR /src
# Dependencies first, in their own layer: the manifests and the lock file
# change far less often than the sources, so `cargo fetch` is cached.
COPY Cargo.toml Cargo.lock ./
COPY crates/assertd/Cargo.toml crates/assertd/Cargo.toml
COPY crates/assertd-api/Cargo.toml crates/assertd-api/Cargo.toml
COPY crates/assertd-policy/Cargo.toml crates/assertd-policy/Cargo.toml
COPY crates/assertd-store/Cargo.toml crates/assertd-store/Cargo.toml
COPY crates/assertd-testkit/Cargo.toml crates/assertd-testkit/Cargo.toml
COPY crates/assertd-verify/Cargo.toml crates/assertd-verify/Cargo.toml
COPY benches/Cargo.toml benches/Cargo.toml
COPY loadtest/Cargo.toml loadtest/Cargo.toml
COPY examples/demo-gateway/Cargo.toml examples/demo-gateway/Cargo.toml
COPY examples/session-revoker/Cargo.toml examples/session-revoker/Cargo.toml
# (cargo needs a target per package to read the workspace: empty stand-ins,
# replaced by the real sources below; the one the sources lack is removed.)
RUN for d in crates/assertd crates/assertd-api crates/assertd-policy crates/assertd-store \
             crates/assertd-testkit crates/assertd-verify benches loadtest examples/demo-gateway \
             examples/session-revoker; do \
      mkdir -p "$d/src" && touch "$d/src/lib.rs"; \
    done \
 && mkdir -p benches/benches && touch benches/benches/verify.rs benches/benches/pipeline.rs loadtest/src/main.rs \
 && cargo fetch --locked \
 && rm benches/src/lib.rs
# Then the sources; compiled crates are kept between builds in a cache mount.
COPY . .
RUN --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --offline -p assertd ${FEATURES:+--features "$FEATURES"} \
 && install -D target/release/assertd /out/assertd \
 && install -d -o 65532 -g 65532 -m 0750 /out/var/lib/assertd

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="assertd" \
      org.opencontainers.image.description="Batch WebAuthn / passkey verification with risk-annotated verdicts, over gRPC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/example/assertd"
COPY --from=build /out/assertd /usr/local/bin/assertd
# The SQLite data directory, writable by the non-root user (mount a volume
# here to keep credentials across restarts).
COPY --from=build --chown=65532:65532 /out/var/lib/assertd /var/lib/assertd
# gRPC, metrics, plaintext health (grpc.health.v1 only, for probes).
EXPOSE 50051 9464 8081
USER 65532:65532
# The default command reads the config the chart (or you) mount at
# /etc/assertd/assertd.toml: beyond loopback it must authenticate callers
# ([[clients]]) and use [tls] unless a mesh terminates it; the SQLite volume
# goes to /var/lib/assertd. To try the image unauthenticated, say so:
#   serve --listen 0.0.0.0:50051 --metrics-listen 0.0.0.0:9464 \
#     --insecure-allow-plaintext --insecure-allow-unauthenticated
ENTRYPOINT ["/usr/local/bin/assertd"]
CMD ["serve", "--config", "/etc/assertd/assertd.toml", "--data-dir", "/var/lib/assertd"]
