# assertd container image: build with cargo, run from distroless as non-root.
#   docker build -t assertd:0.1.0 .
# protoc is vendored (protoc-bin-vendored), so the builder needs nothing else.

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
# The chart mounts its config at /etc/assertd and the SQLite volume at
# /var/lib/assertd; without a config the server starts on loopback only.
ENTRYPOINT ["/usr/local/bin/assertd"]
CMD ["serve", "--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464", "--data-dir", "/var/lib/assertd"]
