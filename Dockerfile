# master-pinger: a static musl binary in an otherwise empty image.
#
#   docker build -t master-pinger .
#       compiles from source (what Hugging Face and Render do);
#   docker buildx build --build-arg BINARY=prebuilt --platform linux/amd64,linux/arm64,linux/arm/v7 .
#       copies dist/<arch>/master-pinger from the build context (the release workflow; no base
#       image is pulled).
#
# No "# syntax=" line: it would make BuildKit pull a frontend image, so it could not build offline.

# Which stage the final image takes its binary from: "build" or "prebuilt".
ARG BINARY=build

# ---- build: compiled from source -----------------------------------------------------------------
# Runs on the build machine's own platform and cross-compiles for the target's, instead of
# emulating the target (an arm/v7 build under emulation takes an hour). Cross linkers come from
# Debian's packages; .cargo/config.toml names them. A native build (arm64 on arm64) needs none:
# Debian's gcc answers to its triplet name too.
FROM --platform=$BUILDPLATFORM rust:1-slim-bookworm AS build
ARG TARGETARCH
ARG TARGETVARIANT
ARG BUILDARCH
RUN set -eu; \
    arch="${TARGETARCH:-amd64}"; \
    case "$arch${TARGETVARIANT:+/$TARGETVARIANT}" in \
      amd64) target=x86_64-unknown-linux-musl; cross=musl-tools ;; \
      arm64) target=aarch64-unknown-linux-musl; cross=gcc-aarch64-linux-gnu ;; \
      arm|arm/v7) target=armv7-unknown-linux-musleabihf; cross=gcc-arm-linux-gnueabihf ;; \
      *) echo "unsupported target platform: $arch $TARGETVARIANT" >&2; exit 1 ;; \
    esac; \
    pkgs=musl-tools; \
    if [ "$arch" != "${BUILDARCH:-amd64}" ]; then pkgs="$pkgs $cross"; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/*; \
    rustup target add "$target"; \
    echo "$target" > /target
WORKDIR /src

# Dependencies first, in a layer of their own: editing src/ does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
# tiny_http and ureq with their fixes, used through [patch.crates-io] (see .patched/*/PATCHED.md).
COPY .patched ./.patched
RUN t="$(cat /target)"; mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked --target "$t" \
 && rm -rf src target/$t/release/master-pinger* target/$t/release/deps/master_pinger* \
           target/$t/release/.fingerprint/master-pinger*

COPY src ./src
RUN t="$(cat /target)"; cargo build --release --locked --target "$t" \
 && cp "target/$t/release/master-pinger" /master-pinger \
 && mkdir /data

# ---- prebuilt: a binary built outside (dist/amd64, dist/arm64, dist/arm) -------------------------
FROM scratch AS prebuilt
ARG TARGETARCH
COPY dist/${TARGETARCH}/master-pinger /master-pinger
# The empty folder the final stage gives to uid 1000 (scratch has no shell to mkdir with).
WORKDIR /data

FROM ${BINARY} AS binary

# ---- run -----------------------------------------------------------------------------------------
# Nothing but the binary: no shell, no libc, no CA files (ureq carries its own webpki roots).
FROM scratch
COPY --from=binary /master-pinger /master-pinger
# An empty /data owned by uid 1000, so a volume mounted there is writable for the state file.
COPY --from=binary --chown=1000:1000 /data /data
# Hugging Face runs containers as uid 1000; so does this image everywhere.
USER 1000:1000
ENV PORT=7860
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/master-pinger", "healthcheck"]
ENTRYPOINT ["/master-pinger"]
