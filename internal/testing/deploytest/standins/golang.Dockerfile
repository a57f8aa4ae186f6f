# Stand-in for golang:1.26-bookworm: Debian bookworm with this machine's Go
# toolchain in /usr/local/go, GOPATH /go, and this machine's CA bundle (the
# module proxy is reached through an intercepting TLS proxy here).
FROM wellknownd-test/debian-base
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV GOPATH=/go GOTOOLCHAIN=local \
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
