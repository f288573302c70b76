#!/usr/bin/env bash
# Verifies the DOFS Terraform: fmt and validate of every root (offline), checkov over
# terraform/, and a full apply -> smoke check -> destroy of the dev root against moto
# server, through the repository's own setup-backend.sh / deploy-infrastructure.sh /
# destroy-infrastructure.sh.
#
# With CI=true a missing prerequisite is a failure; otherwise it prints SKIP and the
# step is skipped (exit 0 if nothing failed).
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/test-terraform.sh [--static] [--help]

Steps:
  fmt        terraform fmt -check -recursive terraform/
  validate   terraform init -backend=false (offline, provider mirror) + validate, every root
  test       terraform test of every module with a tests/ directory (mocked provider, offline):
             keyless dashboard routes, operator key ids, concurrency, timeouts, log groups
  grants     every data-plane action granted to the Lambdas is called by the code; every AWS
             SDK call in crates/aws and lambdas is accounted for (scripts/moto/check_grants_needed.py)
  checkov    checkov over terraform/ (no failed check; every skip has a written reason)
  emulator   the Lambda zips (scripts/build-lambdas.sh --arch x86_64 when they are not
             built yet); moto server (scripts/moto/launcher.py) on a random port;
             setup-backend.sh (twice: idempotent), deploy-infrastructure.sh --skip-build
             (one apply of dev with those zips), smoke checks through boto3
             (scripts/moto/smoke.py; each function's CodeSha256 from Lambda GetFunction is
             its built zip's), each function's role against every AWS operation its code
             calls, on the applied ARNs (scripts/moto/check_grants_needed.py --state),
             destroy-infrastructure.sh --delete-backend, then a listing
             that nothing is left

Options:
  --static   only fmt, validate and checkov (no emulator apply)
  -h, --help this help

Environment:
  CI=true                 missing prerequisites fail instead of SKIP
  DOFS_TF_PLUGIN_MIRROR   provider mirror (default /opt/tf-plugins)
  DOFS_TOOLS_DIR          tool virtualenv location (default ~/.cache/dofs-tools)
  DOFS_LAMBDA_ARTIFACTS   zips to deploy (default $CARGO_TARGET_DIR/lambda or target/lambda; built
                          there by scripts/build-lambdas.sh when one is missing; without CI, a
                          failed build falls back to placeholder zips, said so in the output)
  DOFS_TEST_KEEP=1        keep the temporary directory (logs, outputs)
USAGE
}

static_only=false
for arg in "$@"; do
    case "$arg" in
        --static) static_only=true ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'error: unknown argument %s (see --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/tools.sh
source "$here/tools.sh"

passed=0
failed=0
skipped=0
pass() { passed=$((passed + 1)); printf 'PASS: %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL: %s\n' "$*"; }
summary() {
    printf '\nterraform: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
    ((failed == 0))
}

# A prerequisite check: 0 = present, 2 = SKIP (counted), 1 = FAIL (CI).
prereq() {
    local rc=0
    "$@" || rc=$?
    case "$rc" in
        0) return 0 ;;
        2) skipped=$((skipped + 1)); return 2 ;;
        *) failed=$((failed + 1)); return 1 ;;
    esac
}

work="$(mktemp -d "${TMPDIR:-/tmp}/dofs-test-terraform.XXXXXX")"
moto_port=""
cleanup() {
    local rc=$?
    [[ -n "$moto_port" ]] && dofs_moto_stop "$moto_port"
    if [[ "${DOFS_TEST_KEEP:-}" == 1 ]]; then
        echo "(kept $work)"
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The environment roots, and terraform/account (the account-wide API Gateway logging
# setting, applied once per account and region).
roots=(dev staging prod account)

# --- Terraform prerequisites ---------------------------------------------------------------
echo "== Terraform (offline: provider mirror)"
tf_ok=true
prereq dofs_terraform_env || tf_ok=false

if [[ "$tf_ok" == true ]]; then
    echo "   $(terraform version | head -n1), mirror ${DOFS_TF_PLUGIN_MIRROR}"
    # fmt
    if out="$(terraform fmt -check -recursive -diff "$root/terraform" 2>&1)"; then
        pass "terraform fmt -check -recursive terraform/"
    else
        printf '%s\n' "$out" | head -n 40
        fail "terraform fmt -check -recursive terraform/ (run: terraform fmt -recursive terraform)"
    fi
    # init (no backend, read-only lock file) + validate, each root with its own data dir
    for r in "${roots[@]}"; do
        dir="$root/terraform/environments/$r"
        [[ "$r" == account ]] && dir="$root/terraform/account"
        log="$work/validate-$r.log"
        if TF_DATA_DIR="$work/tf-$r" terraform -chdir="$dir" init -backend=false -input=false \
            -lockfile=readonly -no-color >"$log" 2>&1 &&
            TF_DATA_DIR="$work/tf-$r" terraform -chdir="$dir" validate -no-color >>"$log" 2>&1; then
            pass "terraform validate ${dir#"$root/terraform/"} (offline, lock file read-only)"
        else
            tail -n 30 "$log"
            fail "terraform validate ${dir#"$root/terraform/"}"
        fi
    done
fi

# --- terraform test: offline checks of the modules (mocked AWS provider) ----------------------
if [[ "$tf_ok" == true ]]; then
    echo "== terraform test (mocked provider: nothing is created)"
    # A private copy, so that init writes no .terraform or lock file into the work tree.
    mkdir -p "$work/tftest"
    cp -R "$root/terraform" "$root/workflow" "$work/tftest/"
    find "$work/tftest" -name .terraform -type d -prune -exec rm -rf {} +
    found_tests=0
    for tests in "$work"/tftest/terraform/modules/*/tests; do
        [[ -d "$tests" ]] || continue
        found_tests=1
        mod="$(dirname "$tests")"
        name="modules/$(basename "$mod")"
        log="$work/tftest-$(basename "$mod").log"
        if terraform -chdir="$mod" init -backend=false -input=false -no-color >"$log" 2>&1 &&
            terraform -chdir="$mod" test -no-color >>"$log" 2>&1; then
            pass "terraform test $name ($(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1): $(grep -Eo 'run "[^"]+"\.\.\. pass' "$log" | sed 's/run //; s/"//g; s/\.\.\. pass//' | paste -sd, -))"
        else
            grep -E -A12 'Error|\.\.\. fail' "$log" | head -n 60
            fail "terraform test $name (log: $log)"
        fi
    done
    if ((found_tests == 0)); then
        fail "no terraform test files found under terraform/modules/*/tests"
    fi
fi

# --- grants no code uses ------------------------------------------------------------------------
echo "== Lambda grants used by the code"
if out="$(python3 "$here/moto/check_grants_used.py" 2>&1)"; then
    pass "every sqs/dynamodb/states/cloudwatch/events/ssm action granted to the functions is called by crates/aws or lambdas ($(tail -n1 <<<"$out"))"
else
    printf '%s\n' "$out"
    fail "the Lambda roles grant actions no code uses"
fi
# The other direction needs the ARNs, known only once applied: the emulator step below checks
# every function's grants against them. Here, the source side alone: every AWS SDK call is
# accounted for (its action, its resource, the functions that reach it).
if out="$(python3 "$here/moto/check_grants_needed.py" --code-only 2>&1)"; then
    pass "every AWS SDK call in crates/aws and lambdas has an action, a resource and the functions that reach it ($(tail -n1 <<<"$out"))"
else
    printf '%s\n' "$out"
    fail "scripts/moto/check_grants_needed.py --code-only: AWS SDK calls not accounted for"
fi

# --- checkov -----------------------------------------------------------------------------------
echo "== checkov"
if prereq dofs_tools_venv; then
    # Every skip must carry a reason: #checkov:skip=CKV_...:<reason>
    bare="$(grep -rnE '#[[:space:]]*checkov:skip=[A-Z0-9_]+[[:space:]]*(:[[:space:]]*)?$' "$root/terraform" --include='*.tf' || true)"
    if [[ -n "$bare" ]]; then
        printf '%s\n' "$bare"
        fail "checkov skips without a written reason"
    else
        pass "every checkov skip has a written reason"
    fi
    log="$work/checkov.log"
    if checkov -d "$root/terraform" --framework terraform --compact --quiet --skip-download \
        -o cli >"$log" 2>&1; then
        pass "checkov terraform/ ($(grep -Eo 'Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+' "$log" | head -n1))"
    else
        grep -E 'Check: |FAILED for resource|File: ' "$log" | head -n 60 || tail -n 40 "$log"
        fail "checkov terraform/ ($(grep -Eo 'Failed checks: [0-9]+' "$log" | head -n1))"
    fi
fi

# --- Emulator apply / smoke / destroy ---------------------------------------------------
if [[ "$static_only" == true ]]; then
    echo "== emulator: skipped (--static)"
    summary
    exit $?
fi
echo "== emulator: apply, smoke check and destroy of environments/dev on moto"
if [[ "$tf_ok" != true ]]; then
    echo "   (no Terraform: emulator step not run)"
    summary
    exit $?
fi
if ! prereq dofs_tools_venv; then
    summary
    exit $?
fi

functions=(api_handler validator order_storage fulfill_order dlq_processor)
artifacts="${DOFS_LAMBDA_ARTIFACTS:-${CARGO_TARGET_DIR:-$root/target}/lambda}"
have_zips() {
    local f
    for f in "${functions[@]}"; do
        [[ -f "$artifacts/$f/bootstrap.zip" ]] || return 1
    done
}
placeholders=false
if ! have_zips; then
    echo "   Lambda code: not built in $artifacts; scripts/build-lambdas.sh --arch x86_64"
    if ! DOFS_LAMBDA_DIR="$artifacts" "$here/build-lambdas.sh" --arch x86_64 >"$work/build-lambdas.log" 2>&1 ||
        ! have_zips; then
        tail -n 30 "$work/build-lambdas.log"
        if dofs_ci; then
            fail "scripts/build-lambdas.sh (CI=true: the real zips are deployed, never placeholders)"
            summary
            exit $?
        fi
        placeholders=true
    fi
fi
if [[ "$placeholders" == false ]]; then
    echo "   Lambda code: the built zips in $artifacts"
else
    artifacts="$work/placeholder-artifacts"
    "$DOFS_PYTHON" - "$artifacts" "${functions[@]}" <<'PY'
import os, sys, zipfile
out, names = sys.argv[1], sys.argv[2:]
for name in names:
    os.makedirs(os.path.join(out, name), exist_ok=True)
    with zipfile.ZipFile(os.path.join(out, name, "bootstrap.zip"), "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (0o100755) << 16
        z.writestr(info, "#!/bin/sh\necho 'DOFS placeholder bootstrap: the real Lambda was not built' >&2\nexit 1\n")
PY
    echo "   NOTE: PLACEHOLDER Lambda code deployed (scripts/build-lambdas.sh failed, see above; an"
    echo "         executable 'bootstrap' that exits 1). moto does not run Lambda code anyway."
fi
artifacts="$(cd "$artifacts" && pwd)"

moto_port="$(dofs_free_port)"
if ! dofs_moto_start "$moto_port"; then
    fail "moto server did not start (log: ${DOFS_MOTO_LOG:-?})"
    moto_port=""
    summary
    exit $?
fi
echo "   moto ${DOFS_MOTO_ENDPOINT} (pid ${DOFS_MOTO_PID})"

# own_lock LOG STARTED: the ID of the state lock a failed run met, when that lock is its own.
# The S3 backend takes the lock with one conditional DynamoDB PutItem. When that request's
# answer is lost, the SDK sends it again and the second finds the lock the first one took:
# the run fails with "Error acquiring the state lock" on a lock this user and host created
# after the run began (seen once, in a destroy, in a landing CI run beside the Rust build).
# Nothing else runs Terraform against this test's private emulator, so such a lock is the
# run's own. A lock taken before the run began (one a deploy left behind) is not matched.
own_lock() {
    local log=$1 started=$2 plain id who created
    plain="$(sed 's/\x1b\[[0-9;]*m//g' "$log")"
    grep -q 'Error acquiring the state lock' <<<"$plain" || return 1
    id="$(sed -nE 's/^[│ ]*ID: +([0-9a-f-]{36}).*/\1/p' <<<"$plain" | head -n1)"
    who="$(sed -nE 's/^[│ ]*Who: +([^ ]+).*/\1/p' <<<"$plain" | head -n1)"
    created="$(sed -nE 's/^[│ ]*Created: +([0-9-]+ [0-9:]+).*/\1/p' <<<"$plain" | head -n1)"
    [[ -n "$id" && -n "$created" && "$who" == "$(id -un)@$(hostname)" ]] || return 1
    (($(date -u -d "$created" +%s) >= started)) || return 1
    printf '%s\n' "$id"
}

# run_script LOG SCRIPT ARGS...: runs one of the scripts under test, its output in LOG. A run
# that failed on its own state lock (above) is said so, the lock released with terraform
# force-unlock, and the script run once more; the second run's result is the result. So is
# one that failed releasing its lock: the conditional DeleteItem that releases it can meet
# the same lost answer, and its retry then finds the lock gone. Both scripts can run again
# (an apply or destroy of what is already so changes nothing); if the lock is still there,
# the second run fails on it.
run_script() {
    local log=$1 started id
    shift
    started=$(date +%s)
    "$@" >"$log" 2>&1 && return 0
    if grep -q 'Error releasing the state lock' "$log"; then
        echo "NOTE: $(basename "$1") failed releasing its state lock (most likely its release request, sent again after a lost answer; first run's log: $log.first); run it again"
        cp "$log" "$log.first"
        "$@" >"$log" 2>&1
        return
    fi
    id="$(own_lock "$log" "$started")" || return 1
    echo "NOTE: $(basename "$1") failed on a state lock taken during its own run ($id; most likely its own lock request, sent again after a lost answer; first run's log: $log.first); force-unlock and run it again"
    cp "$log" "$log.first"
    terraform -chdir="$root/terraform/environments/$ENVIRONMENT" force-unlock -force "$id" >"$log.unlock" 2>&1 || {
        cat "$log.unlock"
        return 1
    }
    "$@" >"$log" 2>&1
}

(
    # The scripts under test, exactly as a user runs them, pointed at the emulator.
    export AWS_ENDPOINT_URL="$DOFS_MOTO_ENDPOINT" AWS_REGION=us-east-1 PROJECT_NAME=dofs ENVIRONMENT=dev
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
    unset AWS_PROFILE
    export TF_DATA_DIR="$work/tf-emulator" DOFS_LAMBDA_ARTIFACTS="$artifacts"
    rc=0

    if "$root/setup-backend.sh" >"$work/backend-1.log" 2>&1 &&
        "$root/setup-backend.sh" >"$work/backend-2.log" 2>&1 &&
        grep -q 'bucket s3://.* exists' "$work/backend-2.log"; then
        echo "PASS: setup-backend.sh (state bucket + lock table in moto; second run idempotent)"
    else
        cat "$work/backend-1.log" "$work/backend-2.log" | tail -n 30
        echo "FAIL: setup-backend.sh"
        exit 1
    fi

    t0=$SECONDS
    if run_script "$work/apply.log" "$root/deploy-infrastructure.sh" --skip-build --auto-approve; then
        resources="$(sed 's/\x1b\[[0-9;]*m//g' "$work/apply.log" | grep -Eo 'Apply complete! Resources: [0-9]+ added' | head -n1)"
        echo "PASS: deploy-infrastructure.sh: one terraform apply in $((SECONDS - t0)) s ($resources)"
    else
        sed 's/\x1b\[[0-9;]*m//g' "$work/apply.log" | grep -E -A12 '^(│ )?Error|error:' | head -n 60 || true
        echo "FAIL: deploy-infrastructure.sh (apply log: $work/apply.log; DOFS_TEST_KEEP=1 keeps it)"
        rc=1
    fi

    if ((rc == 0)); then
        dofs_terraform_env >/dev/null
        if terraform -chdir="$root/terraform/environments/dev" output -json >"$work/outputs.json" 2>"$work/outputs.err" &&
            "$DOFS_PYTHON" "$here/moto/smoke.py" deployed --outputs "$work/outputs.json" \
                --asl "$root/workflow/order-processing.asl.json" --artifacts "$artifacts" | sed 's/^/   /'; then
            echo "PASS: smoke check through boto3 (tables, queues, redrive, state machine definition, execution, each function's CodeSha256 = its zip's)"
        else
            cat "$work/outputs.err" 2>/dev/null || true
            echo "FAIL: smoke check"
            rc=1
        fi
    fi

    # The functions' roles, as applied, against what each function's code calls (moto
    # cannot enforce least-privilege policies: README, "What is checked here").
    if ((rc == 0)); then
        if terraform -chdir="$root/terraform/environments/dev" show -json >"$work/state-dev.json" 2>"$work/state.err" &&
            "$DOFS_PYTHON" "$here/moto/check_grants_needed.py" --state "$work/state-dev.json" >"$work/grants-needed.out" 2>&1; then
            sed 's/^/   /' "$work/grants-needed.out"
            echo "PASS: every AWS operation each function's code calls is granted to its role on the resource it calls it on ($(tail -n1 "$work/grants-needed.out"))"
        else
            cat "$work/state.err" "$work/grants-needed.out" 2>/dev/null | sed 's/^/   /'
            echo "FAIL: a function's role lacks a grant its code needs (scripts/moto/check_grants_needed.py)"
            rc=1
        fi
    fi

    # Destroy whatever exists, even after a failed apply.
    t0=$SECONDS
    if run_script "$work/destroy.log" "$root/destroy-infrastructure.sh" --auto-approve --delete-backend; then
        echo "PASS: destroy-infrastructure.sh in $((SECONDS - t0)) s ($(sed 's/\x1b\[[0-9;]*m//g' "$work/destroy.log" | grep -Eo 'Resources: [0-9]+ destroyed' | head -n1))"
    else
        sed 's/\x1b\[[0-9;]*m//g' "$work/destroy.log" | grep -E -A12 '^(│ )?Error|error:' | head -n 60 || true
        echo "FAIL: destroy-infrastructure.sh"
        rc=1
    fi
    bucket="$(grep -Eo 'bucket=[^ ]+' "$work/backend-1.log" | head -n1 | cut -d= -f2)"
    table="$(grep -Eo 'lock_table=[^ ]+' "$work/backend-1.log" | head -n1 | cut -d= -f2)"
    if "$DOFS_PYTHON" "$here/moto/smoke.py" destroyed --state-bucket "$bucket" --lock-table "$table" |
        sed 's/^/   /'; then
        echo "PASS: nothing left over (listed every kind of resource)"
    else
        echo "FAIL: resources left over after destroy"
        rc=1
    fi
    exit "$rc"
) 2>&1 | tee "$work/emulator.out" || true
passed=$((passed + $(grep -c '^PASS: ' "$work/emulator.out" || true)))
failed=$((failed + $(grep -c '^FAIL: ' "$work/emulator.out" || true)))

summary
