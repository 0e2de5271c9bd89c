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

# pgbouncer from Debian, the local stand-in for RDS Proxy (scripts/pooler).
ensure_pgbouncer() {
  if ! command -v pgbouncer >/dev/null 2>&1 && [[ ! -x /usr/sbin/pgbouncer ]]; then
    echo "installing pgbouncer from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
  fi
  export PATH="$PATH:/usr/sbin"
  # The package starts its own instance on 6432; only ours is wanted.
  if command -v service >/dev/null 2>&1; then service pgbouncer stop >/dev/null 2>&1 || true; fi
}

# CloudFormation linters for template.yaml (scripts/lint-template), each from PyPI into its own virtualenv under
# TOOLS_DIR: aws-sam-cli pins a cfn-lint range and dozens of libraries that must not move the global site-packages.
CFN_LINT_VERSION=1.58.0
SAM_CLI_VERSION=1.170.0
TOOLS_DIR="${TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/inventory-tools}"

# Makes the virtualenv DIR hold exactly the PyPI requirement SPEC; the marker is written last, so an interrupted
# install is redone. (A virtualenv cannot be moved into place: its scripts name their interpreter by path.)
ensure_venv() {
  local dir=$1 spec=$2
  if [[ "$(cat "$dir/.installed" 2>/dev/null)" != "$spec" ]]; then
    echo "installing $spec from PyPI into $dir" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$spec"
    echo "$spec" >"$dir/.installed"
  fi
}

# Sets CFN_LINT to the pinned cfn-lint.
ensure_cfn_lint() {
  ensure_venv "$TOOLS_DIR/cfn-lint-$CFN_LINT_VERSION" "cfn-lint==$CFN_LINT_VERSION"
  CFN_LINT="$TOOLS_DIR/cfn-lint-$CFN_LINT_VERSION/bin/cfn-lint"
}

# Sets SAM_CLI to the pinned AWS SAM CLI.
ensure_sam_cli() {
  ensure_venv "$TOOLS_DIR/aws-sam-cli-$SAM_CLI_VERSION" "aws-sam-cli==$SAM_CLI_VERSION"
  SAM_CLI="$TOOLS_DIR/aws-sam-cli-$SAM_CLI_VERSION/bin/sam"
}
