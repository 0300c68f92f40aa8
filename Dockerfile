# syntax=docker/dockerfile:1
# spanpipe's container image: one binary, every command (consume, alert, produce,
# migrate, replay, ...). Build from the repository root so that .git is in the
# context: the binary embeds its commit (go build -buildvcs), which `spanpipe version`
# prints, and the labels below carry the same values (`make image` passes them).
#
#   make image                       # docker build -t spanpipe:$(VERSION) .
#   docker run --rm spanpipe:dev version
#
# Checked without Docker by deploy/deploy_test.go (TestDockerfile): the build
# command below is run with the same flags, and the stages are checked statically.

ARG GO_VERSION=1.26.8

# ---- build: cgo is required (DuckDB is a C++ library linked into the binary).
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=devel
ARG COMMIT=unknown
# `make build`'s flags (-buildvcs=true: the commit from .git) plus a stripped binary.
# No -trimpath: the paths it would hide are /src/...; and compile flags equal to the
# tests' let TestDockerfile reuse their build cache (only ldflags differ: a relink).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -buildvcs=true -ldflags="-s -w" -o /out/spanpipe ./cmd/spanpipe
# The labels must describe this binary: fail the build when they would not.
RUN /out/spanpipe version && \
    if [ "$COMMIT" != unknown ]; then /out/spanpipe version | grep -q "commit $COMMIT"; fi

# ---- runtime: glibc and libstdc++ (DuckDB), no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=devel
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="spanpipe" \
      org.opencontainers.image.description="AI-agent observability data from Kafka into ClickHouse or DuckDB" \
      org.opencontainers.image.source="https://github.com/spanpipe/spanpipe" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/spanpipe /usr/local/bin/spanpipe
# distroless' nonroot user; Kubernetes can check runAsNonRoot against the number.
USER 65532:65532
WORKDIR /home/nonroot
# 9464: consume's /metrics, /livez and /readyz; 9465: alert's.
EXPOSE 9464 9465
ENTRYPOINT ["/usr/local/bin/spanpipe"]
CMD ["consume", "--config", "/etc/spanpipe/spanpipe.yaml"]
