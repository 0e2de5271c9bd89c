# Shared by the scripts.

# The version of cargo-lambda the project is developed and tested with.
CARGO_LAMBDA_VERSION=1.9.2

# cargo-lambda from PyPI: a prebuilt binary, installed in seconds (cargo install would compile for minutes).
ensure_cargo_lambda() {
  if ! command -v cargo-lambda >/dev/null 2>&1; then
    echo "installing cargo-lambda $CARGO_LAMBDA_VERSION from PyPI" >&2
    python3 -m pip install --quiet "cargo-lambda==$CARGO_LAMBDA_VERSION"
    hash -r
  fi
}

# Schemathesis from PyPI, for the contract run.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  if ! schemathesis --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION from PyPI" >&2
    python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
    hash -r
  fi
}
