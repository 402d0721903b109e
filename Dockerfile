# syntax=docker/dockerfile:1
#
# The operator image: one static binary, the CA certificates it trusts and a passwd entry for
# its user; no shell, no package manager, nothing pulled from a registry. `hack/image build`
# compiles the binaries on the build machine and passes a build context holding:
#   trackvia-operator-linux-amd64, trackvia-operator-linux-arm64 (the architectures built),
#   ca-certificates.crt, passwd, group
FROM scratch

# Set by BuildKit and Podman from --platform; hack/image also passes it explicitly.
ARG TARGETARCH=amd64
ARG VERSION=unknown
ARG REVISION=unknown

LABEL org.opencontainers.image.title="trackvia-operator" \
      org.opencontainers.image.description="Kubernetes operator that verifies TrackVia API credentials and publishes connection Secrets" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY passwd group /etc/
# The system store read by the TLS client (rustls-native-certs looks here first on Linux);
# --extra-ca-file adds to it.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY trackvia-operator-linux-${TARGETARCH} /usr/local/bin/trackvia-operator

# UID and GID 65532 ("nonroot"); the Helm chart's security context uses the same IDs.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/trackvia-operator"]
CMD ["run"]
