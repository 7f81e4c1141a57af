// The example app: batchdrop in a stack of its own (BatchdropStack), every prop of the construct taken from
// the CDK context, and the SAM template's outputs. It imports the package by its name, as your app would
// (tsconfig.json maps the name to lib/ here, so the example runs from source).
//
//   cd infra/cdk
//   npx cdk synth -c account=123456789012 -c region=us-east-1      # offline: the account and Region are explicit
//   npx cdk deploy -c jobTimeoutHours=48 -c alarmTopicArn=arn:aws:sns:…   # with credentials: your profile's
//
// Context keys: stackName (default Batchdrop), account and region (default CDK_DEFAULT_ACCOUNT/REGION, which
// the CLI sets from your credentials), and each prop of BatchdropPipeline by its name (infra/cdk/README.md,
// "Props", and docs/configuration.md#all-parameters list them), -c name=value. Numbers are parsed here and
// checked by the construct; an unknown key is refused. Without lambdaDir, the synth builds the functions with
// cargo-lambda.

import { App } from 'aws-cdk-lib';

import { BatchdropPipelineProps, BatchdropStack } from '@batchdrop/cdk';

type Kind = 'string' | 'number';

/** Every prop of the construct, and what its context value is parsed as (the type checker keeps it complete). */
const PROPS: { readonly [K in keyof BatchdropPipelineProps]-?: Kind } = {
  bucketNamePrefix: 'string',
  defaultModel: 'string',
  jobTimeoutHours: 'number',
  minRecordsPerJob: 'number',
  maxRecordsPerFile: 'number',
  maxRecordsPerJob: 'number',
  maxFileBytes: 'number',
  maxJobBytes: 'number',
  maxConcurrentJobs: 'number',
  modelJobQuotas: 'string',
  pollInitialSeconds: 'number',
  pollFactor: 'number',
  pollMaxSeconds: 'number',
  outageBudgetHours: 'number',
  queueTimeoutHours: 'number',
  stopWaitMinutes: 'number',
  outputKmsKeyId: 'string',
  defaultMaxTokens: 'number',
  temperaturePolicy: 'string',
  modelCatalogueKey: 'string',
  eventBusName: 'string',
  logLevel: 'string',
  logRetentionDays: 'number',
  stagingRetentionDays: 'number',
  alarmTopicArn: 'string',
  lambdaDir: 'string',
};
const APP_KEYS = ['stackName', 'account', 'region'];
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * The app's keys and the construct's props from the context. The CLI adds keys of its own (aws:cdk:…) and
 * cdk.context.json holds lookups (availability-zones:account=…); keys with a colon, and feature flags (@…),
 * are theirs.
 */
export function fromContext(context: Record<string, unknown>): {
  app: Record<string, string>;
  pipeline: BatchdropPipelineProps;
} {
  const problems: string[] = [];
  const app: Record<string, string> = {};
  const pipeline: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(context)) {
    if (key.includes(':') || key.startsWith('@')) {
      continue;
    }
    const kind = Object.prototype.hasOwnProperty.call(PROPS, key) ? PROPS[key as keyof typeof PROPS] : undefined;
    if (!APP_KEYS.includes(key) && kind === undefined) {
      problems.push(`unknown context key "${key}"`);
    } else if (kind === 'number' && typeof value === 'number') {
      pipeline[key] = value;
    } else if (kind === 'number') {
      if (typeof value !== 'string' || !NUMBER.test(value.trim())) {
        problems.push(`${key} is ${JSON.stringify(value)}, not a number`);
      } else {
        pipeline[key] = Number(value.trim());
      }
    } else if (typeof value !== 'string') {
      problems.push(`${key} is ${JSON.stringify(value)}, not a string`);
    } else if (kind === 'string') {
      pipeline[key] = value;
    } else {
      app[key] = value;
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `The example app: ${problems.join('; ')}. Valid context keys: ${APP_KEYS.join(', ')}, and the props ` +
        `${Object.keys(PROPS).join(', ')}.`,
    );
  }
  return { app, pipeline: pipeline as BatchdropPipelineProps };
}

if (require.main === module) {
  const app = new App();
  const { app: keys, pipeline } = fromContext(app.node.getAllContext());
  new BatchdropStack(app, keys.stackName ?? 'Batchdrop', {
    env: {
      account: keys.account ?? process.env.CDK_DEFAULT_ACCOUNT,
      region: keys.region ?? process.env.CDK_DEFAULT_REGION,
    },
    pipeline,
  });
}
