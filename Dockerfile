# The demo microservices (gateway, orders, inventory, pricing) for docker-compose.yml.
# One image holds the four baton-examples binaries; compose picks one with
# `command:`.

FROM rust:1.95.0-slim-trixie AS builder
WORKDIR /src
COPY . .
# Builds every baton-examples binary, then keeps the four services by name
# (a missing one fails the build here, not at `docker compose up`).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p baton-examples --bins \
 && mkdir -p /out \
 && cp target/release/gateway target/release/orders target/release/inventory target/release/pricing /out/

FROM debian:trixie-slim
RUN useradd --system --uid 10001 baton
COPY --from=builder /out/ /usr/local/bin/
USER baton
# No ENTRYPOINT: compose's `command:` names the service binary.
CMD ["gateway"]
