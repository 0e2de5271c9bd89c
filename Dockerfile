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
RUN pip3 install --no-cache-dir --break-system-packages cargo-lambda==1.9.2

WORKDIR /app
COPY . .
# Queries are checked against the committed .sqlx/ data (SQLX_OFFLINE in .cargo/config.toml): no database
# is needed to build.
RUN cargo build --bins

EXPOSE 9000
CMD ["cargo", "lambda", "watch", "--ignore-changes", "--invoke-address", "0.0.0.0", "--invoke-port", "9000", "--concurrency", "2"]
