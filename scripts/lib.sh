# Shared by the scripts.

# Runs a command and says on stderr how long it took (the steps of CI and of the test command, to keep them fast).
timed() {
  local start=$SECONDS
  "$@"
  echo "timed: $* took $((SECONDS - start)) s" >&2
}

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

# CloudFormation linters for the two stacks (scripts/lint-template), each from PyPI into its own virtualenv under
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

# Sets SAM_CLI to the pinned AWS SAM CLI, and SAM_PYTHON to the Python of its virtualenv (with its translator).
ensure_sam_cli() {
  ensure_venv "$TOOLS_DIR/aws-sam-cli-$SAM_CLI_VERSION" "aws-sam-cli==$SAM_CLI_VERSION"
  SAM_CLI="$TOOLS_DIR/aws-sam-cli-$SAM_CLI_VERSION/bin/sam"
  SAM_PYTHON="$TOOLS_DIR/aws-sam-cli-$SAM_CLI_VERSION/bin/python"
}

# Sets CHECKOV to the pinned checkov, the policy scanner run on the stacks (scripts/lint-template).
CHECKOV_VERSION=3.3.30
ensure_checkov() {
  ensure_venv "$TOOLS_DIR/checkov-$CHECKOV_VERSION" "checkov==$CHECKOV_VERSION"
  CHECKOV="$TOOLS_DIR/checkov-$CHECKOV_VERSION/bin/checkov"
}

# Zig, the cross-compiler and linker of `cargo lambda build`, from PyPI into its own virtualenv under TOOLS_DIR, so
# a global ziglang of another version is left alone. cargo-lambda (through cargo-zigbuild) asks
# `$CARGO_ZIGBUILD_PYTHON_PATH -m ziglang` first, then `zig` on PATH: both are pointed at the pinned one.
# 0.15.2 is the last release before the `zig ar` regression of 0.16.0, which breaks every crate that archives C
# code with cc-rs (ring, aws-lc-sys): rust-cross/cargo-zigbuild#433, aws/aws-lc-rs#993.
ZIG_VERSION=0.15.2
ensure_zig() {
  local dir="$TOOLS_DIR/ziglang-$ZIG_VERSION" zig_dir
  ensure_venv "$dir" "ziglang==$ZIG_VERSION"
  zig_dir=$("$dir/bin/python" -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))')
  export CARGO_ZIGBUILD_PYTHON_PATH="$dir/bin/python" CARGO_ZIGBUILD_ZIG_PATH="$zig_dir/zig" PATH="$zig_dir:$PATH"
  hash -r
  if [[ "$(zig version)" != "$ZIG_VERSION" ]]; then
    echo "ensure_zig: expected zig $ZIG_VERSION, found $(zig version) at $(command -v zig)" >&2
    return 1
  fi
}
