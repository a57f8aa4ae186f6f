# wellknownd container image: a static binary on distroless, running as non-root.
#   docker build -t wellknownd .
#   docker build --build-arg VERSION=v1.2.3 -t wellknownd:v1.2.3 .
#   docker build --build-arg TAGS=route53 -t wellknownd:route53 .   (dns-01 on Amazon Route 53)
#   docker run -p 80:80 -p 443:443 -p 8448:8448 \
#     -v ./wellknownd.yaml:/etc/wellknownd/wellknownd.yaml:ro -v wellknownd-state:/var/lib/wellknownd wellknownd

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version "wellknownd version" prints and wellknownd_build_info reports.
ARG VERSION=dev
# Set by BuildKit for each --platform (empty with the classic builder: then
# the build machine's own); the binary is cross-compiled, so the build stage
# itself never runs emulated.
ARG TARGETOS
ARG TARGETARCH
# Build tags: route53 links the AWS SDK for dns-01 on Route 53, which every
# process would otherwise carry (docs/dns-01.md).
ARG TAGS=
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -tags "${TAGS}" -ldflags "-s -w -X main.version=${VERSION}" -o /out/wellknownd ./cmd/wellknownd \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="wellknownd" \
      org.opencontainers.image.description="The edge of a self-hosted Matrix homeserver: delegation, HTTPS, reverse proxy, supervision" \
      org.opencontainers.image.source="https://github.com/wellknownd/wellknownd" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/wellknownd /usr/local/bin/wellknownd
# The state volume must belong to the non-root user the daemon runs as.
COPY --from=build --chown=65532:65532 /out/state /var/lib/wellknownd
# Certificates and the ACME account; mount a volume here to keep them.
ENV STATE_DIRECTORY=/var/lib/wellknownd
VOLUME ["/var/lib/wellknownd"]
# Docker lets an unprivileged process bind low ports inside the container
# (net.ipv4.ip_unprivileged_port_start=0), so root is not needed for 80/443.
EXPOSE 80 443 8448
USER nonroot:nonroot
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/wellknownd", "healthcheck", "-config", "/etc/wellknownd/wellknownd.yaml"]
ENTRYPOINT ["/usr/local/bin/wellknownd"]
CMD ["serve", "-config", "/etc/wellknownd/wellknownd.yaml"]
