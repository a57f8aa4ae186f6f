# Stand-in for matrixdotorg/dendrite-monolith:v0.13.8: the same binaries
# built from the v0.13.8 module (dendrite, create-account, generate-config,
# generate-keys in /usr/bin), curl, no USER (root), VOLUME and WORKDIR
# /etc/dendrite, ENTRYPOINT /usr/bin/dendrite, ports 8008 and 8448. Not
# reproduced: alpine (this is Debian, as the binaries link glibc).
FROM wellknownd-test/debian-base
COPY dendrite create-account generate-config generate-keys /usr/bin/
VOLUME /etc/dendrite
WORKDIR /etc/dendrite
ENTRYPOINT ["/usr/bin/dendrite"]
EXPOSE 8008 8448
