# syntax=docker/dockerfile:1
# The switchboard image: the server (roles standalone, edge, broker) and sbctl, on Debian 12.
#
#   docker build -t switchboard:0.1.0 .
#   docker run --rm -p 3000:3000 switchboard:0.1.0            # standalone on :3000
#
# The Helm chart (helm/switchboard) runs it as `switchboard edge ...` and `switchboard broker ...`.

# --- build: the Debian build packages (the list in scripts/setup) and a Release build ----------
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# scripts/setup installs the build dependencies with apt-get; copied alone so that this layer is
# rebuilt only when the list changes.
COPY scripts/setup scripts/setup
RUN scripts/setup && rm -rf /var/lib/apt/lists/*
# npm installs the Admin UI's built files (admin_ui/ui/package-lock.json).
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# ccache (from scripts/setup) keeps its cache in a BuildKit cache mount across builds.
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target switchboard sbctl sb-admin-ui-files -j"$(nproc)" \
 && strip /build/bin/switchboard /build/bin/sbctl

# --- runtime: debian:12-slim with the shared libraries the two binaries link -------------------
FROM debian:12-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# Exactly what `ldd` lists for switchboard and sbctl, by Debian 12 package: gRPC and protobuf,
# NATS.c (and the protobuf-c it links), spdlog and fmt, Abseil, RE2, c-ares, OpenSSL, zlib,
# libcrypt (bcrypt: the Admin UI's login, `switchboard hash-password`), liburing (the edge's
# batched sends).
# ca-certificates: system roots for TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libgrpc++1.51 libgrpc29 libprotobuf32 \
      libnats3.4 libprotobuf-c1 \
      libspdlog1.10 libfmt9 \
      libabsl20220623 libre2-9 libc-ares2 libssl3 zlib1g libcrypt1 liburing2 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin switchboard \
 && mkdir -p /etc/switchboard
COPY --from=build /build/bin/switchboard /build/bin/sbctl /usr/local/bin/
# The Admin UI's files where adminUi.uiDir defaults to: admin-ui beside the binary's folder.
COPY --from=build /build/admin-ui /usr/local/admin-ui
COPY examples/chat.json /etc/switchboard/chat.json
# Fails the build if a shared library is missing.
RUN ! ldd /usr/local/bin/switchboard /usr/local/bin/sbctl | grep 'not found' \
 && switchboard --help >/dev/null && sbctl --help >/dev/null

USER 10001:10001
# Open files: switchboard raises its soft RLIMIT_NOFILE to the hard limit at start and warns when
# limits.maxConnections × 1 descriptor (3 with --tls-cert) + 256 is above it. The hard limit is
# the container runtime's: `docker run --ulimit nofile=65536:65536 ...`, compose `ulimits:
# nofile:`, in Kubernetes the runtime's default (helm/switchboard/values.yaml).
# 3000: Socket.IO (edge, standalone); 50051: gRPC API (broker, standalone);
# 9464: /healthz, /readyz, /metrics (--admin-listen).
EXPOSE 3000 50051 9464
ENTRYPOINT ["switchboard"]
CMD ["standalone", "--listen", "0.0.0.0:3000"]
