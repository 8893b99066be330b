# assertd container image: build with cargo, run from distroless as non-root.
#   docker build -t assertd:0.1.0 .
# protoc is vendored (protoc-bin-vendored) and the rust image has the C
# compiler mimalloc and SQLite need, so the builder needs nothing else.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p assertd \
 && install -D target/release/assertd /out/assertd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/assertd /usr/local/bin/assertd
# gRPC, metrics
EXPOSE 50051 9464
USER 65532:65532
# The default command reads the config the chart (or you) mount at
# /etc/assertd/assertd.toml: beyond loopback it must authenticate callers
# ([[clients]]) and use [tls] unless a mesh terminates it; the SQLite volume
# goes to /var/lib/assertd. To try the image unauthenticated, say so:
#   serve --listen 0.0.0.0:50051 --metrics-listen 0.0.0.0:9464 \
#     --insecure-allow-plaintext --insecure-allow-unauthenticated
ENTRYPOINT ["/usr/local/bin/assertd"]
CMD ["serve", "--config", "/etc/assertd/assertd.toml", "--data-dir", "/var/lib/assertd"]
