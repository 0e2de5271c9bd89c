# The local stack's image (docker-compose.yml): every function binary and `migrate`, served by
# `cargo lambda watch`, the same local API Gateway emulation as `scripts/serve`, so the API answers on the
# same paths inside Docker as outside it. Not a deployment image: Lambda runs the release binaries
# (`cargo lambda build --release`).
#
# Only official base images and packages from Debian, PyPI and crates.io.
FROM rust:1.95-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# cargo-lambda's PyPI package is a prebuilt binary: seconds to install, where `cargo install` takes minutes.
# Without its dependencies: ziglang (about 400 MB) serves `cargo lambda build`, never `cargo lambda watch`.
RUN pip3 install --no-cache-dir --no-deps --break-system-packages cargo-lambda==1.9.2

WORKDIR /app
# The dependencies in a layer of their own, built against stand-ins for the workspace's sources (an empty library,
# an empty main for every binary and bench the manifests name): an edit anywhere but the manifests and
# Cargo.lock rebuilds only the project's two crates.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY shared/Cargo.toml shared/
COPY functions/Cargo.toml functions/
RUN mkdir -p shared/src shared/benches \
    && touch shared/src/lib.rs && echo 'fn main() {}' > shared/benches/orders.rs \
    && for bin in $(sed -n 's/^path = "\(.*\)"$/\1/p' functions/Cargo.toml); do \
         mkdir -p "functions/$(dirname "$bin")" && echo 'fn main() {}' > "functions/$bin"; \
       done \
    && cargo build --bins \
    && rm -rf shared/src shared/benches functions/*/main.rs
COPY . .
# Queries are checked against the committed .sqlx/ data (SQLX_OFFLINE in .cargo/config.toml): no database
# is needed to build. The copied sources keep their own times, older than the stand-ins': touched, they are new.
RUN find shared functions -name '*.rs' -exec touch {} + && cargo build --bins

EXPOSE 9000
CMD ["cargo", "lambda", "watch", "--ignore-changes", "--invoke-address", "0.0.0.0", "--invoke-port", "9000", "--concurrency", "2"]
