# syntax=docker/dockerfile:1
# The `switchboard` host as a container image: the release binary, with the bundled
# voice-pipeline and voice-agent components built into it, on distroless (glibc, CA
# certificates, no shell), running as UID 65532 with a read-only root filesystem.
#
#   docker build -t switchboard .
#   docker run --read-only --tmpfs /tmp -v switchboard-data:/var/lib/switchboard \
#     -v "$PWD/switchboard.toml:/etc/switchboard/switchboard.toml:ro" \
#     -e DEEPGRAM_API_KEY -e TWILIO_AUTH_TOKEN -e SWITCHBOARD_OPERATOR_TOKEN \
#     -p 8080:8080 -p 9090:9090 switchboard
#
# deploy/kubernetes runs it on Kubernetes; docs/scaling.md sizes it.

# --- builder: Debian 12, rustup, the workspace's Rust version and wasm32-wasip2 ----------
FROM debian:bookworm-slim AS builder
# rust-toolchain.toml's channel (Cargo.toml's `rust-version`); the host's build script builds the bundled components
# (Rust guests only) for wasm32-wasip2 with the same toolchain. gcc builds the C parts
# (SQLite, bundled by rusqlite; ring). No Node.js or Python: those build only the test
# suite's TypeScript and Python guests.
ARG RUST_VERSION=1.97.0
ARG RUSTUP_VERSION=1.28.2
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN arch="$(uname -m)-unknown-linux-gnu" \
 && url="https://static.rust-lang.org/rustup/archive/${RUSTUP_VERSION}/${arch}/rustup-init" \
 && curl --proto '=https' --tlsv1.2 -sSf -o /tmp/rustup-init "$url" \
 && echo "$(curl --proto '=https' --tlsv1.2 -sSf "$url.sha256" | cut -d' ' -f1)  /tmp/rustup-init" | sha256sum -c - \
 && chmod +x /tmp/rustup-init \
 && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain "$RUST_VERSION" --target wasm32-wasip2 \
 && rm /tmp/rustup-init \
 && rustc --version && rustup target list --installed

WORKDIR /src
COPY . .
# The cargo registry and target directory are build caches, not layers.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchboard \
 && install -D -m 0755 target/release/switchboard /out/switchboard

# --- runtime: distroless cc (glibc, libgcc, CA certificates), non-root ----------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/switchboard /usr/local/bin/switchboard
# The artifact store and /tmp are the only places the host writes: mount volumes there
# and run with a read-only root filesystem.
USER 65532:65532
VOLUME ["/var/lib/switchboard"]
# 8080: the public listener (Twilio's upgrades, /healthz, /readyz); 9090: the operator
# listener (API, dashboard, /metrics, deploy API). The configuration must bind 0.0.0.0.
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve", "--config", "/etc/switchboard/switchboard.toml"]
