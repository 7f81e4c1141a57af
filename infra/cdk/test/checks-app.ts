// The app `make validate` synthesizes (offline: the account and Region are explicit) for the template checks
// in infra/checks/: the example stack with the default props, and with a KMS key and an alarm topic, the two
// SAM variants that check_parity.py and check_security.py compare it with. It never builds the functions
// (lambdaDir is always set), so that the checks stay quick; test/consumer.sh synthesizes with the build.
//
//   npx cdk synth --app "npx tsx test/checks-app.ts" -o ../../target/cdk/cdk.out

import * as fs from 'node:fs';
import * as path from 'node:path';

import { App } from 'aws-cdk-lib';

import { BatchdropStack, FUNCTION_NAMES } from '@batchdrop/cdk';
import { placeholderLambdaDir } from './placeholder';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const ENV = { account: '123456789012', region: 'us-east-1' };
export const KMS_KEY = 'arn:aws:kms:us-east-1:123456789012:key/0b5e2f4c-1d3a-4e5f-8a9b-0c1d2e3f4a5b';
export const ALARM_TOPIC = 'arn:aws:sns:us-east-1:123456789012:batchdrop-alarms';

/**
 * The `cargo lambda build` output when it is there. On a machine that has not built the functions (a fresh
 * clone, CI before `make build`), a placeholder folder with a dummy `bootstrap` per function instead: the
 * checks read the template, never the code, and a real deploy needs the real binaries.
 */
function lambdaDir(): string {
  const built = path.join(REPO_ROOT, 'target', 'lambda');
  if (FUNCTION_NAMES.every((f) => fs.existsSync(path.join(built, f, 'bootstrap')))) {
    return built;
  }
  return placeholderLambdaDir(path.join(REPO_ROOT, 'target', 'cdk', 'placeholder-lambda'));
}

const app = new App();
const dir = lambdaDir();
new BatchdropStack(app, 'BatchdropDefaults', { env: ENV, pipeline: { lambdaDir: dir } });
new BatchdropStack(app, 'BatchdropKms', {
  env: ENV,
  pipeline: { lambdaDir: dir, outputKmsKeyId: KMS_KEY, alarmTopicArn: ALARM_TOPIC },
});
