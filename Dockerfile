# syntax=docker/dockerfile:1
# wellknownd container image: a static binary on distroless, running as non-root.
#   docker build -t wellknownd .
#   docker run -p 80:80 -p 443:443 -p 8448:8448 \
#     -v ./wellknownd.yaml:/etc/wellknownd/wellknownd.yaml:ro -v wellknownd-state:/var/lib/wellknownd wellknownd

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY delegation ./delegation
COPY deploy ./deploy
COPY server ./server
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wellknownd ./cmd/wellknownd \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
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
