# syntax=docker/dockerfile:1

# Build stage: the release binary, from the locked dependency graph.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin trackvia-operator \
 && install -D -m 0755 target/release/trackvia-operator /out/trackvia-operator

# Runtime stage: glibc and CA certificates only, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/trackvia-operator /usr/local/bin/trackvia-operator
# The distroless "nonroot" user; the Helm chart's security context uses the same IDs.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/trackvia-operator"]
CMD ["run"]
