#!/usr/bin/env bash
# The consumer test of the packed construct (`make cdk-consumer`): what a CDK user does, in a throwaway folder
# outside the repository, with nothing of the repository but the tarball, the CDK CLI, tsc and tsx.
#
#   infra/cdk/test/consumer.sh target/cdk-package/batchdrop-cdk-0.1.0.tgz
#
# 1. A new app depends on the tarball and on aws-cdk-lib and constructs at the versions of the root
#    package-lock.json; npm installs it; one copy of each must be installed.
# 2. Its app.ts imports @batchdrop/cdk by name: BatchdropDefaults and BatchdropKms (the two variants of the
#    template checks, BatchdropStack with construct id "Batchdrop") and a stack of its own that holds the
#    construct. tsc type-checks it (strict).
# 3. Without cargo on PATH, the synth fails with the construct's message that says what to install.
# 4. cdk synth, offline, builds the four functions from the tarball's sources with cargo-lambda (timed); each
#    asset's bootstrap must be an aarch64 ELF executable, and the stacks must share each function's build.
# 5. cfn-lint, and the parity, security, operations and event schema checks against the SAM template.
#
# Environment: SAM_TEMPLATE (default target/sam/template.json: `make target/sam/template.json`), PYTHON and
# CFN_LINT (default from .venv), CARGO_TARGET_DIR (cargo's build cache, passed through), PATH with cargo and
# cargo-lambda. The folder is removed when every step passed, and kept (its path printed) when one failed.
set -euo pipefail

say() { printf 'consumer: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

[ $# -eq 1 ] || fail "usage: $0 <packed tarball>"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)
tarball=$(realpath "$1")
[ -f "$tarball" ] || fail "no tarball $1 (make cdk-package)"
sam_template=$(realpath "${SAM_TEMPLATE:-$repo/target/sam/template.json}")
[ -f "$sam_template" ] || fail "no $sam_template (make target/sam/template.json)"
python=${PYTHON:-$repo/.venv/bin/python}
cfn_lint=${CFN_LINT:-$repo/.venv/bin/cfn-lint}
node_bin=$repo/node_modules/.bin
export CDK_DISABLE_VERSION_CHECK=true CDK_DISABLE_CLI_TELEMETRY=true PYTHONDONTWRITEBYTECODE=1

work=$(mktemp -d "${TMPDIR:-/tmp}/batchdrop-consumer.XXXXXX")
work=$(cd "$work" && pwd -P)
case "$work/" in "$repo"/*) fail "the temporary folder $work is inside the repository" ;; esac
passed=false
cleanup() {
  if $passed; then
    rm -rf "$work"
  else
    say "the app is kept in $work"
  fi
}
trap cleanup EXIT

# ------------------------------------------------------------------ 1. install
pinned() { node -p "require('$repo/package-lock.json').packages['node_modules/$1'].version"; }
cdk_lib=$(pinned aws-cdk-lib)
constructs=$(pinned constructs)
say "app in $work: $(basename "$tarball"), aws-cdk-lib $cdk_lib, constructs $constructs"
cat > "$work/package.json" <<EOF
{
  "name": "batchdrop-consumer-test",
  "private": true,
  "dependencies": {
    "@batchdrop/cdk": "file:$tarball",
    "aws-cdk-lib": "$cdk_lib",
    "constructs": "$constructs"
  }
}
EOF
(cd "$work" && npm install --prefer-offline --no-audit --no-fund --loglevel=error) || fail "npm install"
for dep in aws-cdk-lib constructs; do
  # Every installed copy of the package, wherever npm put it.
  copies=$(cd "$work" && npm query "#$dep" | node -e '
    const nodes = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(new Set(nodes.map((n) => n.realpath)).size);')
  (cd "$work" && npm ls "$dep" --all) >&2 || fail "npm ls $dep"
  [ "$copies" = 1 ] || fail "$copies copies of $dep installed; the construct must use the app's own"
done
[ -f "$work/node_modules/@batchdrop/cdk/assets/Cargo.toml" ] || fail "the installed package has no assets/"
[ -e "$work/node_modules/@batchdrop/cdk/lib" ] && fail "the installed package holds its TypeScript sources"

# ------------------------------------------------------------------ 2. the app, type-checked
cat > "$work/app.ts" <<'EOF'
import { App, CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';

import { BatchdropPipeline, BatchdropStack } from '@batchdrop/cdk';

const env = { account: '123456789012', region: 'us-east-1' };

/** batchdrop inside a stack of the app's own, wired to its own outputs. */
class OwnStack extends Stack {
  constructor(scope: Construct, id: string, props: StackProps) {
    super(scope, id, props);
    const pipeline = new BatchdropPipeline(this, 'Batchdrop', { bucketNamePrefix: 'own-app', jobTimeoutHours: 48 });
    new CfnOutput(this, 'Inbox', { value: `s3://${pipeline.inputBucket.bucketName}/inbox/` });
  }
}

const app = new App();
new BatchdropStack(app, 'BatchdropDefaults', { env });
new BatchdropStack(app, 'BatchdropKms', {
  env,
  pipeline: {
    outputKmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/0b5e2f4c-1d3a-4e5f-8a9b-0c1d2e3f4a5b',
    alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:batchdrop-alarms',
  },
});
new OwnStack(app, 'OwnStack', { env });
EOF
cat > "$work/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "target": "es2022",
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "lib": ["es2022"],
    "types": [],
    "strict": true,
    "skipLibCheck": true,
    "noEmit": true
  },
  "files": ["app.ts"]
}
EOF
cat > "$work/cdk.json" <<EOF
{
  "app": "$node_bin/tsx app.ts",
  "versionReporting": false,
  "pathMetadata": true,
  "notices": false
}
EOF
"$node_bin/tsc" -p "$work" || fail "tsc: the app does not type-check against the package"
say "tsc: app.ts type-checks against @batchdrop/cdk"

# ------------------------------------------------------------------ 3. no cargo: the construct says what to do
mkdir "$work/no-cargo-bin"
ln -s "$(command -v node)" "$work/no-cargo-bin/node"
if (cd "$work" && PATH="$work/no-cargo-bin" "$node_bin/cdk" synth --quiet --no-notices -o "$work/no-cargo.out") \
    > "$work/no-cargo.log" 2>&1; then
  fail "the synth without cargo on PATH succeeded"
fi
grep -q 'pip install cargo-lambda ziglang' "$work/no-cargo.log" ||
  { cat "$work/no-cargo.log" >&2; fail "the synth without cargo did not fail with the construct's message"; }
grep -q -i 'docker' "$work/no-cargo.log" && fail "the synth without cargo tried Docker"
say "without cargo: the synth stops with the construct's message"
rm -rf "$work/no-cargo-bin" "$work/no-cargo.out"

# ------------------------------------------------------------------ 4. the synth builds the functions
command -v cargo-lambda > /dev/null || fail "cargo-lambda is not on PATH"
say "cdk synth: cargo lambda build of the four functions from the tarball's sources" \
  "(CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-<workspace>/target})"
start=$(date +%s)
(cd "$work" && "$node_bin/cdk" synth --quiet --no-notices -o cdk.out) || fail "cdk synth"
synth_seconds=$(($(date +%s) - start))
say "cdk synth took ${synth_seconds} s"

"$python" "$repo/infra/checks/check_cdk_assets.py" "$work/cdk.out" BatchdropDefaults BatchdropKms OwnStack \
  || fail "the function assets"

# ------------------------------------------------------------------ 5. the template checks
"$cfn_lint" "$work"/cdk.out/{BatchdropDefaults,BatchdropKms,OwnStack}.template.json || fail "cfn-lint"
say "cfn-lint: the three templates pass"
for check in check_parity check_security check_operations check_event_schema; do
  "$python" "$repo/infra/checks/$check.py" "$sam_template" "$work/cdk.out" || fail "$check.py"
done

passed=true
say "passed: the packed construct installs, type-checks, builds its functions (synth ${synth_seconds} s)" \
  "and passes the checks"
