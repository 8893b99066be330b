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
# The chart mounts its config at /etc/assertd (with [tls], or an explicit
# allow_plaintext behind a mesh) and the SQLite volume at /var/lib/assertd.
# This default command is for trying the image: plaintext, said explicitly.
ENTRYPOINT ["/usr/local/bin/assertd"]
CMD ["serve", "--listen", "0.0.0.0:50051", "--allow-plaintext", "--metrics-listen", "0.0.0.0:9464", "--data-dir", "/var/lib/assertd"]
