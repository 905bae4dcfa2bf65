# syntax=docker/dockerfile:1
# master-pinger: a static musl binary in an otherwise empty image.

# ---- build ---------------------------------------------------------------------------------------
# Alpine's Rust targets musl and links statically by default; musl-dev gives ring its C toolchain.
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src

# Dependencies first, in a layer of their own: editing src/ does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/master-pinger* target/release/deps/master_pinger* target/release/.fingerprint/master-pinger*

COPY src ./src
RUN cargo build --release --locked && cp target/release/master-pinger /master-pinger \
 && mkdir /data

# ---- run -----------------------------------------------------------------------------------------
# Nothing but the binary: no shell, no libc, no CA files (ureq carries its own webpki roots).
FROM scratch
COPY --from=build /master-pinger /master-pinger
# An empty /data owned by uid 1000, so a volume mounted there is writable for the state file.
COPY --from=build --chown=1000:1000 /data /data
# Hugging Face runs containers as uid 1000; so does this image everywhere.
USER 1000:1000
ENV PORT=7860
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/master-pinger", "healthcheck"]
ENTRYPOINT ["/master-pinger"]
