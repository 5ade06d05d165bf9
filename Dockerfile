# syntax=docker/dockerfile:1
#
# sockdiag_exporter container image.
#
#   docker build -t sockdiag_exporter:0.1.0 --build-arg REVISION=$(git rev-parse --short=12 HEAD) .
#
# The build stage runs deploy/docker/build.sh, the same script tests/checks/45-docker-build.sh
# runs in CI on the same file set (.dockerignore), so the recipe shipped here is the tested one.
#
# Privileges (docs/deploy.md): the image runs as a non-root user by default, which is enough for
# every socket metric of the network namespace it runs in. Process names need
# CAP_DAC_READ_SEARCH + CAP_SYS_PTRACE, and capabilities granted to a non-root container never
# become effective (kubernetes#56374: no ambient capabilities); so for them run it as uid 0
# with every other capability dropped:
#   docker run --network host --pid host --user 0 --cap-drop ALL \
#     --cap-add DAC_READ_SEARCH --cap-add SYS_PTRACE --read-only sockdiag_exporter:0.1.0

# Kept equal to Cargo.toml's version by tests/checks/45-docker-build.sh.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/sockdiag/sockdiag_exporter

# Debian 12 in both stages: the binary links glibc dynamically, and CI builds it on Debian 12,
# so builder, runtime and CI agree on the glibc version.
FROM rust:1.95-slim-bookworm AS builder
# A build arg is in the environment of RUN: build.sh records it as sockdiag_build_info{revision}
# (the context has no .git). SOURCE_DATE_EPOCH, when given, is the build date
# (sockdiag_build_info{build_date}, --version), so that a rebuild of one commit is identical.
ARG REVISION
ARG SOURCE_DATE_EPOCH
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    deploy/docker/build.sh /out

# distroless/cc: glibc and libgcc only, no shell or package manager to abuse. ":nonroot" runs as
# uid 65532 unless the deployment asks for uid 0 plus the two capabilities (see above).
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION
ARG REVISION
ARG SOURCE
LABEL org.opencontainers.image.title="sockdiag_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Linux TCP socket states via netlink sock_diag" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

COPY --from=builder /out/sockdiag_exporter /usr/local/bin/sockdiag_exporter

USER 65532:65532
EXPOSE 10120
ENTRYPOINT ["/usr/local/bin/sockdiag_exporter"]
