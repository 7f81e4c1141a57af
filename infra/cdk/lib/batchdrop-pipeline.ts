// BatchdropPipeline: the whole of batchdrop (two buckets, four Rust functions, the state machine, the Bedrock
// service role, the rule of Bedrock's job events, the submit failure queue, alarms and the completion event's
// schema) as one construct to add to a stack of your own. It builds what infra/template.yaml builds, resource
// for resource; the parity check (infra/checks/check_parity.py) compares the two and lists every difference it
// allows, with its reason.
//
// It reuses the project's artefacts rather than copying them: statemachine/batch.asl.json with the same
// DefinitionSubstitutions as the SAM template, infra/events/batch-event.schema.json and
// infra/events/bedrock-job-events.pattern.json, and the Cargo workspace, whose four function binaries it
// builds at synth time with cargo-lambda (cargo-lambda-cdk's RustFunction), or takes prebuilt from lambdaDir.
// Those files come from the repository around this package (infra/cdk/ of a checkout), else from the copy the
// package carries in assets/ (scripts/bundle.mjs writes it when the package is built or packed).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Aws, CfnResource, Duration, RemovalPolicy, Size, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventschemas from 'aws-cdk-lib/aws-eventschemas';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';

const PACKAGE_NAME = '@batchdrop/cdk';
/** The functions: folder under functions/ = Cargo package = binary = sub-folder of lambdaDir. */
export const FUNCTION_NAMES = ['submit', 'check-jobs', 'finalize', 'wake'] as const;
const STATE_MACHINE_FILE = path.join('statemachine', 'batch.asl.json');
const EVENT_SCHEMA_FILE = path.join('infra', 'events', 'batch-event.schema.json');
const JOB_EVENTS_PATTERN_FILE = path.join('infra', 'events', 'bedrock-job-events.pattern.json');
const SOURCE_FILES = ['Cargo.toml', 'Cargo.lock', STATE_MACHINE_FILE, EVENT_SCHEMA_FILE, JOB_EVENTS_PATTERN_FILE];

/** The folder of this package's package.json: lib/ when run from source, dist/lib/ when compiled. */
function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, 'utf8')).name === PACKAGE_NAME) {
      return dir;
    }
    if (path.dirname(dir) === dir) {
      throw new Error(`BatchdropPipeline: no package.json of ${PACKAGE_NAME} above ${__dirname}`);
    }
  }
}

/**
 * The folder that holds the Cargo workspace, statemachine/ and infra/events/. The repository comes first when
 * this package is its infra/cdk/ (in-repository use, or an install that links the folder): a copy in assets/
 * left by an earlier build could be older than the checkout. Installed from the tarball (or with
 * --install-links), the package has only its own copy.
 */
function batchdropSourceRoot(): string {
  const pkg = packageRoot();
  const repo = path.resolve(pkg, '..', '..');
  const holdsAll = (dir: string) => SOURCE_FILES.every((f) => fs.existsSync(path.join(dir, f)));
  if (path.join(repo, 'infra', 'cdk') === pkg && holdsAll(repo)) {
    return repo;
  }
  const bundled = path.join(pkg, 'assets');
  if (holdsAll(bundled)) {
    return bundled;
  }
  throw new Error(
    `BatchdropPipeline: ${pkg} is neither infra/cdk of a batchdrop repository nor a built package with its ` +
      'assets/ folder; build it (`npm run build` in infra/cdk, or `make cdk-package`) or install the packed tarball',
  );
}

let cargoLambdaFound = false;

/**
 * cargo-lambda-cdk falls back to a Docker build, quietly, when `cargo lambda` does not run; without Docker that
 * fails later with a message about Docker. Checked once per process, and only when a stack is bundled.
 */
function checkCargoLambda(): void {
  if (cargoLambdaFound) {
    return;
  }
  const run = spawnSync('cargo', ['lambda', '--version'], { encoding: 'utf8' });
  if (run.error || run.status !== 0) {
    const why = run.error ? run.error.message : (run.stderr || run.stdout || `exit status ${run.status}`).trim();
    throw new Error(
      `BatchdropPipeline builds its Rust functions with cargo-lambda, and \`cargo lambda --version\` failed: ${why}. ` +
        'Install Rust (rustup, with `rustup target add aarch64-unknown-linux-gnu`), then cargo-lambda and zig on ' +
        'PATH (for example `pip install cargo-lambda ziglang` in a virtual environment, or `make tools` in the ' +
        'batchdrop repository, which puts both in .venv/bin); or build the functions elsewhere and pass their ' +
        'folder as lambdaDir (<name>/bootstrap for submit, check-jobs, finalize and wake).',
    );
  }
  cargoLambdaFound = true;
}

/** The functions' application log levels (the SAM parameter LogLevel's AllowedValues). */
export const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What a temperature above 1 becomes (the SAM parameter TemperaturePolicy's AllowedValues). */
export const TEMPERATURE_POLICIES = ['reject', 'clamp', 'scale'] as const;
export type TemperaturePolicy = (typeof TEMPERATURE_POLICIES)[number];

/** The values CloudWatch Logs accepts for a log group's retention (LogRetentionDays's AllowedValues). */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;
export type LogRetentionDays = (typeof LOG_RETENTION_DAYS)[number];

/**
 * The SAM template's parameters, one prop each, with the same defaults and limits
 * (docs/configuration.md#all-parameters).
 * The functions' environment variables come from them exactly as in infra/template.yaml.
 */
export interface BatchdropPipelineProps {
  /** Start of both bucket names: `<prefix>-input-<account>-<region>` and `<prefix>-output-…`. @default 'batchdrop' */
  readonly bucketNamePrefix?: string;
  /** Batch model when the upload's folder names none (DEFAULT_MODEL). @default 'us.anthropic.claude-3-5-haiku-20241022-v1:0' */
  readonly defaultModel?: string;
  /** Bedrock's timeoutDurationInHours, 24–168 (JOB_TIMEOUT_HOURS). @default 24 */
  readonly jobTimeoutHours?: number;
  /** Bedrock's minimum records per job, for every model (MIN_RECORDS_PER_JOB); 0 takes each model's own from the
   * model catalogue (docs/models.md). @default 0 */
  readonly minRecordsPerJob?: number;
  /** Bedrock's maximum records per input file (MAX_RECORDS_PER_FILE). @default 50000 */
  readonly maxRecordsPerFile?: number;
  /** Bedrock's maximum records per job (MAX_RECORDS_PER_JOB). @default 50000 */
  readonly maxRecordsPerJob?: number;
  /** Bedrock's maximum input file size in bytes (MAX_FILE_BYTES). @default 1000000000 */
  readonly maxFileBytes?: number;
  /** Bedrock's maximum job size in bytes (MAX_JOB_BYTES). @default 5000000000 */
  readonly maxJobBytes?: number;
  /**
   * Jobs of one model submitted or running at once across every batch of the stack, Bedrock's per-model quota
   * for the account (MAX_CONCURRENT_JOBS); the others wait in the model's job queue, first come first served.
   * @default 20
   */
  readonly maxConcurrentJobs?: number;
  /**
   * Per-model quotas over maxConcurrentJobs, as `model-id=N` pairs separated by commas (MODEL_JOB_QUOTAS).
   * @default ''
   */
  readonly modelJobQuotas?: string;
  /** First wait between two polls, in seconds (POLL_INITIAL_SECONDS). @default 60 */
  readonly pollInitialSeconds?: number;
  /** Growth factor of the wait (POLL_FACTOR). @default 1.5 */
  readonly pollFactor?: number;
  /**
   * Longest wait between two polls, in seconds (POLL_MAX_SECONDS). Bedrock's job events wake the loop at once;
   * this backstop only matters when an event is lost.
   * @default 3600
   */
  readonly pollMaxSeconds?: number;
  /**
   * How long the poll loop rides out S3 or Bedrock errors (throttling, 5xx, timeouts) before the batch fails;
   * meanwhile it keeps waiting and retrying. 1–48 hours (OUTAGE_BUDGET_HOURS).
   * @default 6
   */
  readonly outageBudgetHours?: number;
  /**
   * How long a planned job may wait for a free Bedrock slot; after it, its records are reported batch_expired.
   * 1–168 hours (QUEUE_TIMEOUT_HOURS).
   * @default 24
   */
  readonly queueTimeoutHours?: number;
  /**
   * On the failure path, how long batchdrop waits for stopped jobs to reach Stopped before delivering what they
   * returned. 5–1440 minutes (STOP_WAIT_MINUTES).
   * @default 120
   */
  readonly stopWaitMinutes?: number;
  /**
   * ARN of a customer managed KMS key (OUTPUT_KMS_KEY_ID). When set, both buckets use SSE-KMS with it and
   * Bedrock writes its output with it; when unset (or empty), the buckets use SSE-S3.
   * @default - SSE-S3
   */
  readonly outputKmsKeyId?: string;
  /** max_tokens of lines that set none (DEFAULT_MAX_TOKENS). @default 4096 */
  readonly defaultMaxTokens?: number;
  /**
   * A request temperature above the model's maximum (1 for Claude, Nova and the other built-in models), which
   * OpenAI allows up to 2 (TEMPERATURE_POLICY): reject the line, clamp it to the maximum, or scale every
   * temperature onto the model's range, by half for a maximum of 1 (docs/formats.md, "Temperature").
   * @default 'reject'
   */
  readonly temperaturePolicy?: TemperaturePolicy;
  /**
   * Key, under `config/` in the input bucket, of a model catalogue file of your own that adds or replaces models
   * (MODEL_CATALOGUE_KEY; docs/models.md, "Adding a model"). The functions read it when they start, and refuse
   * to start when it is missing or invalid.
   * @default - the built-in catalogue only
   */
  readonly modelCatalogueKey?: string;
  /**
   * Name (not ARN) of the EventBridge bus of the completion events: 1–256 of letters, digits, `.`, `-`, `_`.
   * @default 'default'
   */
  readonly eventBusName?: string;
  /** Application log level of the functions. @default 'INFO' */
  readonly logLevel?: LogLevel;
  /** Days the functions' and the state machine's logs are kept. @default 30 */
  readonly logRetentionDays?: LogRetentionDays;
  /**
   * Days staging/, cancel/ and bedrock/ objects are kept; at least 14 (STAGING_RETENTION_DAYS). It must outlast
   * the longest possible batch: the functions refuse to start when it is shorter than queueTimeoutHours +
   * jobTimeoutHours + outageBudgetHours + stopWaitMinutes plus a day.
   * @default 30
   */
  readonly stagingRetentionDays?: number;
  /** ARN of the SNS topic the alarms notify; empty is unset. @default - the alarms only change state */
  readonly alarmTopicArn?: string;
  /**
   * Prebuilt functions, for pipelines that build them elsewhere: a folder of `cargo lambda build` output, one
   * sub-folder per function (submit, check-jobs, finalize, wake) holding its arm64 `bootstrap`, as
   * `cargo lambda build --release --arm64 --lambda-dir <folder>` (or `make build-functions`: target/lambda)
   * leaves it. When set, nothing is built at synth time and cargo-lambda is not needed.
   * @default - the functions are built at synth time from the Cargo workspace, with cargo-lambda
   */
  readonly lambdaDir?: string;
}

const DEFAULTS = {
  bucketNamePrefix: 'batchdrop',
  defaultModel: 'us.anthropic.claude-3-5-haiku-20241022-v1:0',
  jobTimeoutHours: 24,
  minRecordsPerJob: 0,
  maxRecordsPerFile: 50000,
  maxRecordsPerJob: 50000,
  maxFileBytes: 1000000000,
  maxJobBytes: 5000000000,
  maxConcurrentJobs: 20,
  modelJobQuotas: '',
  pollInitialSeconds: 60,
  pollFactor: 1.5,
  pollMaxSeconds: 3600,
  outageBudgetHours: 6,
  queueTimeoutHours: 24,
  stopWaitMinutes: 120,
  defaultMaxTokens: 4096,
  temperaturePolicy: 'reject' as TemperaturePolicy,
  modelCatalogueKey: '',
  eventBusName: 'default',
  logLevel: 'INFO' as LogLevel,
  logRetentionDays: 30 as LogRetentionDays,
  stagingRetentionDays: 30,
};

type ResolvedProps = typeof DEFAULTS & BatchdropPipelineProps;

/**
 * The SAM parameters' AllowedPattern, AllowedValues, MinValue and MaxValue, checked at synth time, and the
 * types TypeScript checks only for TypeScript callers. Whole numbers where the functions parse an integer
 * (all but pollFactor), which a SAM Number parameter cannot say. Tokens (a CfnParameter's value, say) are
 * left to CloudFormation.
 */
function checkProps(p: ResolvedProps): void {
  const problems: string[] = [];
  const pattern = (name: string, value: unknown, re: RegExp) => {
    if (value === undefined || (typeof value === 'string' && Token.isUnresolved(value))) {
      return;
    }
    if (typeof value !== 'string' || !re.test(value)) {
      problems.push(`${name} ${JSON.stringify(value)} does not match ${re}`);
    }
  };
  const range = (name: string, value: unknown, min: number, max = Infinity, whole = true) => {
    if (typeof value === 'number' && Token.isUnresolved(value)) {
      return;
    }
    const limits = max === Infinity ? `at least ${min}` : `${min}-${max}`;
    if (typeof value !== 'number' || !(value >= min && value <= max) || (whole && !Number.isInteger(value))) {
      problems.push(`${name} is ${JSON.stringify(value)}; it must be ${whole ? 'a whole number' : 'a number'}, ${limits}`);
    }
  };
  const oneOf = (name: string, value: unknown, allowed: readonly unknown[]) => {
    if ((typeof value === 'string' || typeof value === 'number') && Token.isUnresolved(value)) {
      return;
    }
    if (!allowed.includes(value)) {
      problems.push(`${name} is ${JSON.stringify(value)}; it must be one of ${allowed.join(', ')}`);
    }
  };
  pattern('bucketNamePrefix', p.bucketNamePrefix, /^[a-z0-9][a-z0-9-]{0,23}[a-z0-9]$/);
  pattern('defaultModel', p.defaultModel, /^.+$/);
  pattern('outputKmsKeyId', p.outputKmsKeyId, /^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key\/[a-zA-Z0-9-]+$/);
  // A bus name as PutEvents takes it: no ARN, no "/".
  pattern('eventBusName', p.eventBusName, /^[.\-_A-Za-z0-9]{1,256}$/);
  pattern('modelJobQuotas', p.modelJobQuotas, /^([^=,]+=[1-9][0-9]*)?(,[^=,]+=[1-9][0-9]*)*$/);
  pattern('modelCatalogueKey', p.modelCatalogueKey, /^$|^config\/[A-Za-z0-9!_.*'()/-]+[.]json$/);
  pattern('alarmTopicArn', p.alarmTopicArn, /^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$/);
  oneOf('logLevel', p.logLevel, LOG_LEVELS);
  oneOf('temperaturePolicy', p.temperaturePolicy, TEMPERATURE_POLICIES);
  oneOf('logRetentionDays', p.logRetentionDays, LOG_RETENTION_DAYS);
  range('jobTimeoutHours', p.jobTimeoutHours, 24, 168);
  range('minRecordsPerJob', p.minRecordsPerJob, 0);
  range('maxRecordsPerFile', p.maxRecordsPerFile, 1);
  range('maxRecordsPerJob', p.maxRecordsPerJob, 1);
  range('maxFileBytes', p.maxFileBytes, 1);
  range('maxJobBytes', p.maxJobBytes, 1);
  range('maxConcurrentJobs', p.maxConcurrentJobs, 1);
  range('pollInitialSeconds', p.pollInitialSeconds, 1);
  range('pollFactor', p.pollFactor, 1, Infinity, false);
  range('pollMaxSeconds', p.pollMaxSeconds, 1);
  range('defaultMaxTokens', p.defaultMaxTokens, 1);
  range('outageBudgetHours', p.outageBudgetHours, 1, 48);
  range('queueTimeoutHours', p.queueTimeoutHours, 1, 168);
  range('stopWaitMinutes', p.stopWaitMinutes, 5, 1440);
  range('stagingRetentionDays', p.stagingRetentionDays, 14);
  if (p.lambdaDir !== undefined && typeof p.lambdaDir !== 'string') {
    problems.push(`lambdaDir is ${JSON.stringify(p.lambdaDir)}; it must be a folder's path`);
  }
  // The functions' own start-up check (src/pipeline/mod.rs, Config::from_vars), made at synth time so that a
  // stack whose functions would refuse to start is never deployed. A SAM parameter cannot do this arithmetic.
  // Only on numbers that passed the checks above.
  const times = [p.queueTimeoutHours, p.jobTimeoutHours, p.outageBudgetHours, p.stopWaitMinutes, p.stagingRetentionDays];
  if (problems.length === 0 && !times.some((v) => Token.isUnresolved(v))) {
    const longestBatchSeconds = (p.queueTimeoutHours + p.jobTimeoutHours + p.outageBudgetHours) * 3600 + p.stopWaitMinutes * 60;
    if (p.stagingRetentionDays * 86400 < longestBatchSeconds + 86400) {
      problems.push(
        `stagingRetentionDays is ${p.stagingRetentionDays}; it must be at least ` +
          `${Math.ceil((longestBatchSeconds + 86400) / 86400)}, the longest possible batch (queueTimeoutHours + ` +
          'jobTimeoutHours + outageBudgetHours + stopWaitMinutes) plus a day: staged files would expire before ' +
          'finalize reads them',
      );
    }
  }
  if (problems.length > 0) {
    throw new Error(`BatchdropPipeline: ${problems.join('; ')}`);
  }
}

export class BatchdropPipeline extends Construct {
  public readonly inputBucket: s3.Bucket;
  public readonly outputBucket: s3.Bucket;
  public readonly bedrockServiceRole: iam.Role;
  public readonly submitFunction: lambda.Function;
  public readonly checkJobsFunction: lambda.Function;
  public readonly jobQueueTable: dynamodb.Table;
  public readonly finalizeFunction: lambda.Function;
  public readonly wakeFunction: lambda.Function;
  public readonly bedrockJobEventsRule: events.CfnRule;
  public readonly stateMachine: sfn.StateMachine;
  public readonly submitFailureQueue: sqs.Queue;
  public readonly alarms: cloudwatch.Alarm[] = [];
  public readonly eventSchema: eventschemas.CfnSchema;

  constructor(scope: Construct, id: string, props: BatchdropPipelineProps = {}) {
    super(scope, id);
    // A prop given as undefined keeps its default, and an empty outputKmsKeyId or alarmTopicArn means unset,
    // as the SAM parameters' "" default.
    const given = Object.entries(props).filter(([key, value]) => value !== undefined &&
      !(value === '' && (key === 'outputKmsKeyId' || key === 'alarmTopicArn')));
    const p: ResolvedProps = { ...DEFAULTS, ...Object.fromEntries(given) };
    checkProps(p);
    const kmsKey = p.outputKmsKeyId;
    const sourceRoot = batchdropSourceRoot();
    const code: FunctionCode = p.lambdaDir !== undefined
      ? { lambdaDir: p.lambdaDir }
      : { manifestPath: path.join(sourceRoot, 'Cargo.toml') };
    // `cdk destroy` and `cdk ls`, say, synthesize without bundling: cargo-lambda is needed only to bundle.
    if ('manifestPath' in code && Stack.of(this).bundlingRequired) {
      checkCargoLambda();
    }

    // The input bucket triggers submit, and every function reads or writes it. Naming it by a reference to
    // the bucket would close a dependency cycle (bucket -> notification -> function -> role -> bucket), so,
    // as in the SAM template, everything names it by the same string built from the prefix.
    const inputBucketName = `${p.bucketNamePrefix}-input-${Aws.ACCOUNT_ID}-${Aws.REGION}`;
    const outputBucketName = `${p.bucketNamePrefix}-output-${Aws.ACCOUNT_ID}-${Aws.REGION}`;
    const inputBucketArn = `arn:${Aws.PARTITION}:s3:::${inputBucketName}`;
    const jobArns = `arn:${Aws.PARTITION}:bedrock:${Aws.REGION}:${Aws.ACCOUNT_ID}:model-invocation-job/*`;
    // Cross-Region inference profiles route to the foundation model in other Regions.
    const modelArns = [
      `arn:${Aws.PARTITION}:bedrock:*::foundation-model/*`,
      `arn:${Aws.PARTITION}:bedrock:*:${Aws.ACCOUNT_ID}:inference-profile/*`,
      `arn:${Aws.PARTITION}:bedrock:${Aws.REGION}:${Aws.ACCOUNT_ID}:application-inference-profile/*`,
    ];
    const sameAccount = { StringEquals: { 'aws:ResourceAccount': Aws.ACCOUNT_ID } };
    const useBucketKey = kmsKey
      ? [new iam.PolicyStatement({ sid: 'UseBucketKey', actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [kmsKey] })]
      : [];

    // ------------------------------------------------------------ buckets
    this.inputBucket = this.bucket('InputBucket', inputBucketName, true, kmsKey, [
      { id: 'expire-staging', prefix: 'staging/', expiration: Duration.days(p.stagingRetentionDays) },
      { id: 'expire-cancel-markers', prefix: 'cancel/', expiration: Duration.days(p.stagingRetentionDays) },
      // Expiring staging/ and cancel/ leaves delete markers over old versions (the bucket is versioned): the
      // old versions go after the same number of days, then the markers.
      {
        id: 'expire-old-versions',
        noncurrentVersionExpiration: Duration.days(p.stagingRetentionDays),
        expiredObjectDeleteMarker: true,
        abortIncompleteMultipartUploadAfter: Duration.days(7),
      },
    ]);
    this.outputBucket = this.bucket('OutputBucket', outputBucketName, false, kmsKey, [
      { id: 'expire-bedrock-output', prefix: 'bedrock/', expiration: Duration.days(p.stagingRetentionDays) },
      { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
    ]);
    const outputBucketArn = this.outputBucket.bucketArn;

    // ------------------------------------------------------------ Bedrock service role
    // Bedrock assumes it to read the staged input files and write the jobs' output: the roleArn that
    // check-jobs passes to CreateModelInvocationJob.
    this.bedrockServiceRole = new iam.Role(this, 'BedrockServiceRole', {
      description: "Role Amazon Bedrock assumes to run batchdrop's batch inference jobs",
      assumedBy: new iam.ServicePrincipal('bedrock.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: { 'aws:SourceArn': jobArns },
        },
      }),
      inlinePolicies: {
        'batch-inference': new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'ReadStagedInput',
              actions: ['s3:GetObject'],
              resources: [`${inputBucketArn}/staging/*`],
              conditions: sameAccount,
            }),
            new iam.PolicyStatement({
              sid: 'ListStagedInput',
              actions: ['s3:ListBucket'],
              resources: [inputBucketArn],
              conditions: { StringLike: { 's3:prefix': 'staging/*' }, ...sameAccount },
            }),
            new iam.PolicyStatement({
              sid: 'WriteJobOutput',
              actions: ['s3:PutObject'],
              resources: [`${outputBucketArn}/bedrock/*`],
              conditions: sameAccount,
            }),
            new iam.PolicyStatement({
              sid: 'ListJobOutput',
              actions: ['s3:ListBucket'],
              resources: [outputBucketArn],
              conditions: { StringLike: { 's3:prefix': 'bedrock/*' }, ...sameAccount },
            }),
            new iam.PolicyStatement({ sid: 'InvokeBatchModels', actions: ['bedrock:InvokeModel'], resources: modelArns }),
            ...useBucketKey,
          ],
        }),
      },
    });
    const passServiceRole = new iam.PolicyStatement({
      sid: 'PassBedrockServiceRole',
      actions: ['iam:PassRole'],
      resources: [this.bedrockServiceRole.roleArn],
      conditions: { StringEquals: { 'iam:PassedToService': 'bedrock.amazonaws.com' } },
    });

    // ------------------------------------------------------------ functions
    // The functions' environment (infra/template.yaml, Globals); numbers as the strings a SAM !Ref gives.
    const environment: Record<string, string> = {
      INPUT_BUCKET: inputBucketName,
      OUTPUT_BUCKET: outputBucketName,
      BEDROCK_ROLE_ARN: this.bedrockServiceRole.roleArn,
      DEFAULT_MODEL: p.defaultModel,
      JOB_TIMEOUT_HOURS: String(p.jobTimeoutHours),
      MIN_RECORDS_PER_JOB: String(p.minRecordsPerJob),
      MAX_RECORDS_PER_FILE: String(p.maxRecordsPerFile),
      MAX_RECORDS_PER_JOB: String(p.maxRecordsPerJob),
      MAX_FILE_BYTES: String(p.maxFileBytes),
      MAX_JOB_BYTES: String(p.maxJobBytes),
      MAX_CONCURRENT_JOBS: String(p.maxConcurrentJobs),
      MODEL_JOB_QUOTAS: p.modelJobQuotas,
      POLL_INITIAL_SECONDS: String(p.pollInitialSeconds),
      POLL_FACTOR: String(p.pollFactor),
      POLL_MAX_SECONDS: String(p.pollMaxSeconds),
      OUTPUT_KMS_KEY_ID: kmsKey ?? '',
      DEFAULT_MAX_TOKENS: String(p.defaultMaxTokens),
      TEMPERATURE_POLICY: p.temperaturePolicy,
      MODEL_CATALOGUE_KEY: p.modelCatalogueKey,
      OUTAGE_BUDGET_HOURS: String(p.outageBudgetHours),
      QUEUE_TIMEOUT_HOURS: String(p.queueTimeoutHours),
      STOP_WAIT_MINUTES: String(p.stopWaitMinutes),
      STAGING_RETENTION_DAYS: String(p.stagingRetentionDays),
      WORK_DIR: '/tmp',
    };
    // Every function reads the deployment's own model catalogue, when it has one, as it starts.
    const readCatalogue = p.modelCatalogueKey
      ? [new iam.PolicyStatement({ sid: 'ReadModelCatalogue', actions: ['s3:GetObject'], resources: [`${inputBucketArn}/${p.modelCatalogueKey}`] })]
      : [];
    const fn = (name: FunctionName, stem: string, settings: FunctionSettings) =>
      this.rustFunction(name, stem, code, p.logLevel, p.logRetentionDays, environment,
        { ...settings, statements: [...readCatalogue, ...settings.statements] });

    this.submitFailureQueue = new sqs.Queue(this, 'SubmitFailureQueue', {
      retentionPeriod: Duration.seconds(1209600),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
    });
    this.submitFailureQueue.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyInsecureTransport',
        effect: iam.Effect.DENY,
        principals: [new iam.StarPrincipal()],
        actions: ['sqs:*'],
        resources: [this.submitFailureQueue.queueArn],
        conditions: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );

    // ListModelInvocationJobs takes no resource-level permissions (IAM knows no resource type for the action),
    // so "*"; it lists job summaries only. Each function finds the jobs of a batch by name with it.
    const findBatchJobs = () => new iam.PolicyStatement({
      sid: 'FindBatchJobs',
      actions: ['bedrock:ListModelInvocationJobs'],
      resources: ['*'],
    });

    // The ledger of Bedrock job slots per model shared by every batch of the stack (docs/queue.md): a few small
    // items per model, read and written by check-jobs with conditional transactions.
    this.jobQueueTable = new dynamodb.Table(this, 'JobQueueTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // As the SAM template's table: its items describe running batches only, and go with the stack.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // One turn of the state machine's poll loop, the one place jobs are created; in stop mode (the failure
    // path), it stops every job of the batch and waits for them.
    this.checkJobsFunction = fn('check-jobs', 'CheckJobs', {
      description: "batchdrop check-jobs - create and poll a batch's Bedrock jobs, honour cancel requests, " +
        'stop the jobs of a failed batch',
      memorySize: 256,
      // Above the state machine tasks' TimeoutSeconds (240, statemachine/batch.asl.json), so that a task's
      // States.Timeout comes first and means the task's own limit.
      timeout: 300,
      statements: [
        new iam.PolicyStatement({ sid: 'ReadCancelMarkers', actions: ['s3:GetObject'], resources: [`${inputBucketArn}/cancel/*`] }),
        // HeadObject of a missing cancel marker answers 404 (not 403) only with ListBucket.
        new iam.PolicyStatement({ sid: 'ListInput', actions: ['s3:ListBucket'], resources: [inputBucketArn] }),
        new iam.PolicyStatement({
          sid: 'ReadWriteBatchDocument',
          actions: ['s3:GetObject', 's3:PutObject'],
          resources: [`${outputBucketArn}/results/*`],
        }),
        new iam.PolicyStatement({ sid: 'ListOutput', actions: ['s3:ListBucket'], resources: [outputBucketArn] }),
        new iam.PolicyStatement({
          sid: 'WatchJobs',
          actions: ['bedrock:GetModelInvocationJob', 'bedrock:StopModelInvocationJob'],
          resources: [jobArns],
        }),
        // A create whose outcome is unknown, and stop mode, find the batch's jobs by name.
        findBatchJobs(),
        new iam.PolicyStatement({
          sid: 'CreateQueuedJobs',
          actions: ['bedrock:CreateModelInvocationJob'],
          resources: [jobArns, ...modelArns],
        }),
        new iam.PolicyStatement({ sid: 'TagJobs', actions: ['bedrock:TagResource'], resources: [jobArns] }),
        passServiceRole,
        // The account-wide job queue (docs/queue.md): its transactions need the item actions they group.
        new iam.PolicyStatement({
          sid: 'UseJobQueue',
          actions: ['dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
          resources: [this.jobQueueTable.tableArn],
        }),
        ...useBucketKey,
      ],
      environment: { JOB_QUEUE_TABLE: this.jobQueueTable.tableName },
    });

    // Bedrock's output back to OpenAI output.jsonl and errors.jsonl, the final batch.json, the event detail.
    this.finalizeFunction = fn('finalize', 'Finalize', {
      description: 'batchdrop finalize - OpenAI output and error files, final batch.json, event detail',
      memorySize: 2048,
      // Above the state machine tasks' TimeoutSeconds (840 and 120, statemachine/batch.asl.json), so that a
      // task's States.Timeout comes first and means the task's own limit.
      timeout: 900,
      ephemeralStorageMiB: 10240,
      statements: [
        new iam.PolicyStatement({ sid: 'ReadRecordMap', actions: ['s3:GetObject'], resources: [`${inputBucketArn}/staging/*`] }),
        new iam.PolicyStatement({ sid: 'ReadJobOutput', actions: ['s3:GetObject'], resources: [`${outputBucketArn}/bedrock/*`] }),
        new iam.PolicyStatement({ sid: 'ListOutput', actions: ['s3:ListBucket'], resources: [outputBucketArn] }),
        new iam.PolicyStatement({
          sid: 'WriteResults',
          actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
          resources: [`${outputBucketArn}/results/*`],
        }),
        findBatchJobs(),
        new iam.PolicyStatement({
          sid: 'StopJobsOfFailedBatch',
          actions: ['bedrock:GetModelInvocationJob', 'bedrock:StopModelInvocationJob'],
          resources: [jobArns],
        }),
        ...useBucketKey,
      ],
    });

    // The poll loop's wait (Wait For Jobs) invokes it with its task token, which it keeps in batch.json; a
    // Bedrock event that one of the batch's jobs ended completes that token, so the loop checks at once. It
    // needs no Bedrock right: the event names the job, and batch.json the batch's jobs. The right to complete
    // the token is in WakeFunctionTaskTokenPolicy, after the state machine: the state machine's definition
    // names this function, so a statement naming the state machine in its role would close a dependency cycle
    // (state machine -> function -> role -> state machine).
    this.wakeFunction = fn('wake', 'Wake', {
      description: 'batchdrop wake - parks the poll loop with its task token and wakes it on Bedrock job events',
      memorySize: 256,
      timeout: 60,
      statements: [
        // batch.json keeps the task token; every change to it is a conditional write.
        new iam.PolicyStatement({
          sid: 'ReadWriteBatchDocument',
          actions: ['s3:GetObject', 's3:PutObject'],
          resources: [`${outputBucketArn}/results/*`],
        }),
        // GetObject of a missing batch.json (a job event of another stack or tool) answers 404 (not 403) only
        // with ListBucket, so such an event is ignored rather than taken for an error.
        new iam.PolicyStatement({ sid: 'ListOutput', actions: ['s3:ListBucket'], resources: [outputBucketArn] }),
        ...useBucketKey,
      ],
    });

    // Bedrock puts its job state changes on the default bus, whatever eventBusName (batchdrop's own events) is.
    // The pattern is infra/events/bedrock-job-events.pattern.json: terminal statuses of jobs named like
    // batchdrop's (<batch-id>-job<n>). The function checks each job against its batch.json, so events of other
    // stacks or tools change nothing. Events are best effort, even with these retries: a lost one only delays
    // the next check to the end of the wait, the poll timeout (pollMaxSeconds at most), which is the backstop.
    // A CfnRule, so that the pattern file goes in as it is (events.Rule takes its pattern in camelCase), and a
    // CfnPermission named as in the SAM template (the LambdaFunction target names its own after the rule's path).
    this.bedrockJobEventsRule = new events.CfnRule(this, 'BedrockJobEventsRule', {
      description: "batchdrop - Bedrock batch inference jobs that ended wake their batch's poll loop",
      eventPattern: JSON.parse(fs.readFileSync(path.join(sourceRoot, JOB_EVENTS_PATTERN_FILE), 'utf8')),
      targets: [
        {
          id: 'WakeFunction',
          arn: this.wakeFunction.functionArn,
          retryPolicy: { maximumRetryAttempts: 4, maximumEventAgeInSeconds: 900 },
        },
      ],
    });
    new lambda.CfnPermission(this, 'WakeFunctionBedrockJobEventsPermission', {
      action: 'lambda:InvokeFunction',
      functionName: this.wakeFunction.functionName,
      principal: 'events.amazonaws.com',
      sourceArn: this.bedrockJobEventsRule.attrArn,
    });

    // ------------------------------------------------------------ state machine
    const stateMachineLogGroup = new logs.LogGroup(this, 'StateMachineLogGroup', {
      logGroupName: `/batchdrop/${Aws.STACK_NAME}/state-machine`,
      retention: p.logRetentionDays as unknown as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const stateMachineRole = new iam.Role(this, 'BatchStateMachineRole', {
      assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
      inlinePolicies: {
        'batch-state-machine': new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'InvokeStepFunctions',
              actions: ['lambda:InvokeFunction'],
              resources: [
                this.checkJobsFunction.functionArn,
                `${this.checkJobsFunction.functionArn}:*`,
                this.finalizeFunction.functionArn,
                `${this.finalizeFunction.functionArn}:*`,
                this.wakeFunction.functionArn,
                `${this.wakeFunction.functionArn}:*`,
              ],
            }),
            new iam.PolicyStatement({
              sid: 'AnnounceBatches',
              actions: ['events:PutEvents'],
              resources: [`arn:${Aws.PARTITION}:events:${Aws.REGION}:${Aws.ACCOUNT_ID}:event-bus/${p.eventBusName}`],
            }),
            // The log delivery actions (logs:CreateLogDelivery and the rest) take no resource-level
            // permissions; the StateMachine construct adds them on "*" for the logs destination below.
          ],
        }),
      },
    });
    // The ASL file as a string, not an S3 asset (DefinitionBody.fromFile), so the template carries the very
    // definition the SAM template inlines, with the same substitutions.
    this.stateMachine = new sfn.StateMachine(this, 'BatchStateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(fs.readFileSync(path.join(sourceRoot, STATE_MACHINE_FILE), 'utf8')),
      definitionSubstitutions: {
        CheckJobsFunctionArn: this.checkJobsFunction.functionArn,
        FinalizeFunctionArn: this.finalizeFunction.functionArn,
        WakeFunctionArn: this.wakeFunction.functionArn,
        EventBusName: p.eventBusName,
      },
      role: stateMachineRole,
      logs: { destination: stateMachineLogGroup, level: sfn.LogLevel.ERROR, includeExecutionData: false },
    });
    // The StateMachine class makes the state machine depend on its role, which RoleArn already does (cfn-lint
    // W3005); the dependency on the role's DefaultPolicy, which holds the log delivery permissions that
    // CloudFormation needs before it creates the state machine, stays.
    const logDelivery = stateMachineRole.node.tryFindChild('DefaultPolicy') as iam.Policy | undefined;
    if (logDelivery) {
      (this.stateMachine.node.defaultChild as CfnResource).addOverride('DependsOn', [
        Stack.of(this).getLogicalId(logDelivery.node.defaultChild as CfnResource),
      ]);
    }
    const batchExecutions =
      `arn:${Aws.PARTITION}:states:${Aws.REGION}:${Aws.ACCOUNT_ID}:execution:${this.stateMachine.stateMachineName}:*`;
    const wakeParkedLoop = () => new iam.PolicyStatement({
      sid: 'WakeParkedLoop',
      actions: ['states:SendTaskSuccess'],
      resources: [this.stateMachine.stateMachineArn, batchExecutions],
    });

    // The wake function's right to complete the parked wait's task token, apart from its role (see above).
    new iam.Policy(this, 'WakeFunctionTaskTokenPolicy', {
      policyName: 'wake-task-token',
      roles: [this.wakeFunction.role as iam.Role],
      statements: [wakeParkedLoop()],
    });

    // Apart from the role, because the state machine names the function: a batch that frees a slot wakes the
    // parked loop of the batch next in the job queue, and a waiting batch asks whether the execution that holds
    // a slot still runs (docs/queue.md).
    new iam.Policy(this, 'CheckJobsFunctionQueuePolicy', {
      policyName: 'check-jobs-queue',
      roles: [this.checkJobsFunction.role as iam.Role],
      statements: [
        new iam.PolicyStatement({
          sid: 'WakeNextInQueue',
          actions: ['states:SendTaskSuccess'],
          resources: [this.stateMachine.stateMachineArn, batchExecutions],
        }),
        new iam.PolicyStatement({
          sid: 'ReadQueueOwnerExecution',
          actions: ['states:DescribeExecution'],
          resources: [batchExecutions],
        }),
      ],
    });

    // An upload into inbox/ becomes a batch: validate and translate every line, stage the Bedrock input files
    // and the job plan, start the execution (check-jobs creates the jobs). Streams the file through ephemeral
    // storage. A cancel marker (cancel/<batch-id>) makes it stop that batch's jobs at once, so a cancel takes
    // effect within a minute, not at the next poll.
    this.submitFunction = fn('submit', 'Submit', {
      description: 'batchdrop submit - an OpenAI batch file in inbox/ becomes staged Bedrock input and an execution; ' +
        "a cancel marker in cancel/ stops its batch's jobs",
      memorySize: 2048,
      timeout: 900,
      ephemeralStorageMiB: 10240,
      environment: { STATE_MACHINE_ARN: this.stateMachine.stateMachineArn },
      statements: [
        new iam.PolicyStatement({
          sid: 'ReadUploads',
          actions: ['s3:GetObject', 's3:GetObjectVersion'],
          resources: [`${inputBucketArn}/inbox/*`],
        }),
        new iam.PolicyStatement({
          sid: 'WriteStaging',
          actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
          resources: [`${inputBucketArn}/staging/*`],
        }),
        new iam.PolicyStatement({
          sid: 'ReadWriteBatchDocument',
          actions: ['s3:GetObject', 's3:PutObject'],
          resources: [`${outputBucketArn}/results/*`],
        }),
        // HeadObject of a missing key answers 404 (not 403) only with ListBucket.
        new iam.PolicyStatement({ sid: 'ListOutput', actions: ['s3:ListBucket'], resources: [outputBucketArn] }),
        // Submit creates no job; a cancel marker makes it find the batch's jobs by name and stop them.
        findBatchJobs(),
        new iam.PolicyStatement({
          sid: 'StopJobsOfCancelledBatch',
          actions: ['bedrock:GetModelInvocationJob', 'bedrock:StopModelInvocationJob'],
          resources: [jobArns],
        }),
        new iam.PolicyStatement({
          sid: 'StartBatchExecution',
          actions: ['states:StartExecution'],
          resources: [this.stateMachine.stateMachineArn],
        }),
        new iam.PolicyStatement({
          sid: 'ReadBatchExecution',
          actions: ['states:DescribeExecution'],
          resources: [
            `arn:${Aws.PARTITION}:states:${Aws.REGION}:${Aws.ACCOUNT_ID}:execution:${this.stateMachine.stateMachineName}:*`,
          ],
        }),
        // A cancel marker also wakes the batch's parked poll loop (the task token in batch.json), so that the
        // loop sees the stopped jobs at once rather than at the end of its wait.
        wakeParkedLoop(),
        // Lambda sends the upload events that failed every retry (the EventInvokeConfig below) with this role.
        new iam.PolicyStatement({
          sid: 'KeepFailedUploadEvents',
          actions: ['sqs:SendMessage'],
          resources: [this.submitFailureQueue.queueArn],
        }),
        ...useBucketKey,
      ],
    });

    // S3 invokes submit asynchronously and delivers events at least once; submit is idempotent per object
    // version. Lambda retries a failed event twice, then sends it with the error to the failure queue. A plain
    // CfnEventInvokeConfig: the SqsDestination class would also grant sqs:GetQueueAttributes and GetQueueUrl.
    new lambda.CfnEventInvokeConfig(this, 'SubmitFunctionEventInvokeConfig', {
      functionName: this.submitFunction.functionName,
      qualifier: '$LATEST',
      maximumRetryAttempts: 2,
      maximumEventAgeInSeconds: 21600,
      destinationConfig: { onFailure: { destination: this.submitFailureQueue.queueArn } },
    });

    // The triggers, written on the bucket itself as SAM does, with a Lambda permission each (SAM's names, and
    // its order: the events by name). Bucket.addEventNotification would instead add a custom resource whose own
    // Lambda function holds s3:PutBucketNotification on every bucket ("*").
    const permission = (id: string) => new lambda.CfnPermission(this, id, {
      action: 'lambda:InvokeFunction',
      functionName: this.submitFunction.functionName,
      principal: 's3.amazonaws.com',
      sourceAccount: Aws.ACCOUNT_ID,
    });
    const permissions = [permission('SubmitFunctionInboxUploadPermission'), permission('SubmitFunctionCancelMarkerPermission')];
    const cfnInput = this.inputBucket.node.defaultChild as s3.CfnBucket;
    cfnInput.notificationConfiguration = {
      lambdaConfigurations: [
        // Any object under cancel/ (named after a batch id, any suffix).
        {
          event: 's3:ObjectCreated:*',
          filter: { s3Key: { rules: [{ name: 'prefix', value: 'cancel/' }] } },
          function: this.submitFunction.functionArn,
        },
        {
          event: 's3:ObjectCreated:*',
          filter: {
            s3Key: {
              rules: [
                { name: 'prefix', value: 'inbox/' },
                { name: 'suffix', value: '.jsonl' },
              ],
            },
          },
          function: this.submitFunction.functionArn,
        },
      ],
    };
    // S3 checks at once that it may invoke the function.
    permissions.forEach((p) => cfnInput.node.addDependency(p));

    // ------------------------------------------------------------ alarms
    // Each fires on the first occurrence in five minutes and notifies alarmTopicArn when it is set.
    const alarm = (id: string, description: string, namespace: string, metricName: string,
      dimensionsMap: Record<string, string>, statistic: string) => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmDescription: description,
        metric: new cloudwatch.Metric({ namespace, metricName, dimensionsMap, statistic, period: Duration.seconds(300) }),
        evaluationPeriods: 1,
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      if (p.alarmTopicArn) {
        const topicArn = p.alarmTopicArn;
        a.addAlarmAction({ bind: () => ({ alarmActionArn: topicArn }) });
      }
      this.alarms.push(a);
    };
    alarm('BatchExecutionsFailedAlarm',
      'batchdrop: an execution of the batch state machine failed (the batch ended with a Batch Failed event, or ' +
        'its Batch Completed event could not be sent). See results/<batch-id>/batch.json and the execution.',
      'AWS/States', 'ExecutionsFailed', { StateMachineArn: this.stateMachine.stateMachineArn }, 'Sum');
    alarm('SubmitErrorsAlarm', 'batchdrop submit returned errors (Lambda retries each upload event twice).',
      'AWS/Lambda', 'Errors', { FunctionName: this.submitFunction.functionName }, 'Sum');
    alarm('CheckJobsErrorsAlarm', 'batchdrop check-jobs returned errors (the state machine retries transient ones).',
      'AWS/Lambda', 'Errors', { FunctionName: this.checkJobsFunction.functionName }, 'Sum');
    alarm('FinalizeErrorsAlarm', 'batchdrop finalize returned errors (the state machine retries transient ones).',
      'AWS/Lambda', 'Errors', { FunctionName: this.finalizeFunction.functionName }, 'Sum');
    alarm('WakeErrorsAlarm',
      'batchdrop wake returned errors (a wait it could not park falls back to the plain poll wait; Lambda ' +
        'retries each Bedrock job event twice).',
      'AWS/Lambda', 'Errors', { FunctionName: this.wakeFunction.functionName }, 'Sum');
    alarm('SubmitFailureQueueAlarm',
      'batchdrop: upload events that submit failed on after its retries wait in the submit failure queue ' +
        '(SubmitFailureQueueUrl); each names the object and the error. Fix the cause, then upload the file again.',
      'AWS/SQS', 'ApproximateNumberOfMessagesVisible', { QueueName: this.submitFailureQueue.queueName }, 'Maximum');

    // A Bedrock job batchdrop could not stop keeps running (and costing) after its batch ended. The functions
    // log "could not stop job" (JSON, through tracing) when a StopModelInvocationJob fails; a quoted term
    // matches it anywhere in the log event. The metric's namespace carries the stack name: a metric filter's
    // dimensions can only come from fields of a JSON or space-delimited pattern, never a constant, so two stacks
    // in one account and Region are kept apart by namespace instead.
    const stopFailuresNamespace = `batchdrop/${Aws.STACK_NAME}`;
    for (const [stem, f] of [['Submit', this.submitFunction], ['CheckJobs', this.checkJobsFunction],
      ['Finalize', this.finalizeFunction]] as const) {
      new logs.MetricFilter(this, `${stem}JobStopFailuresFilter`, {
        logGroup: f.logGroup,
        filterPattern: logs.FilterPattern.literal('"could not stop job"'),
        metricNamespace: stopFailuresNamespace,
        metricName: 'JobStopFailures',
        metricValue: '1',
      });
    }
    alarm('JobStopFailuresAlarm',
      'batchdrop could not stop a Bedrock job (cancel, or the failure path): it may still be running and billing. ' +
        'Find "could not stop job" in the functions\' logs, then stop the job (aws bedrock ' +
        'stop-model-invocation-job --job-identifier <job ARN>).',
      stopFailuresNamespace, 'JobStopFailures', {}, 'Sum');

    // ------------------------------------------------------------ the completion event's schema
    const registry = new eventschemas.CfnRegistry(this, 'EventSchemaRegistry', {
      registryName: `batchdrop-${Aws.STACK_NAME}`,
      description: 'Events of batchdrop (source batchdrop)',
    });
    this.eventSchema = new eventschemas.CfnSchema(this, 'BatchEventSchema', {
      registryName: registry.attrRegistryName,
      schemaName: 'batchdrop@BatchEvent',
      type: 'JSONSchemaDraft4',
      description: 'Batch Completed and Batch Failed events of batchdrop',
      content: fs.readFileSync(path.join(sourceRoot, EVENT_SCHEMA_FILE), 'utf8'),
    });
  }

  /** A bucket as the SAM template has it: versioned or not, TLS only, no public access, SSE-S3 or SSE-KMS. */
  private bucket(id: string, name: string, versioned: boolean, kmsKey: string | undefined,
    lifecycleRules: s3.LifecycleRule[]): s3.Bucket {
    const bucket = new s3.Bucket(this, id, {
      bucketName: name,
      versioned,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      lifecycleRules,
      // CloudFormation deletes an empty bucket with the stack and keeps one that holds results, as SAM does.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Written out, so that SSE-S3 also keeps BucketKeyEnabled as in the SAM template (the Bucket class allows
    // it with KMS only); the key only matters for SSE-KMS.
    (bucket.node.defaultChild as s3.CfnBucket).bucketEncryption = {
      serverSideEncryptionConfiguration: [
        {
          bucketKeyEnabled: true,
          serverSideEncryptionByDefault: kmsKey
            ? { sseAlgorithm: 'aws:kms', kmsMasterKeyId: kmsKey }
            : { sseAlgorithm: 'AES256' },
        },
      ],
    };
    bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyInsecureTransport',
        effect: iam.Effect.DENY,
        principals: [new iam.StarPrincipal()],
        actions: ['s3:*'],
        resources: [bucket.bucketArn, `${bucket.bucketArn}/*`],
        conditions: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
    return bucket;
  }

  /**
   * One Rust function: its log group (with retention), its own role (which may write only to that log group,
   * instead of AWSLambdaBasicExecutionRole's logs permissions on every log group), its code built by
   * `cargo lambda build` at synth time or taken from lambdaDir. The same function either way.
   */
  private rustFunction(name: FunctionName, stem: string, code: FunctionCode, logLevel: LogLevel,
    logRetentionDays: LogRetentionDays, environment: Record<string, string>, s: FunctionSettings): lambda.Function {
    const logGroup = new logs.LogGroup(this, `${stem}LogGroup`, {
      logGroupName: `/batchdrop/${Aws.STACK_NAME}/${name}`,
      retention: logRetentionDays as unknown as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, `${stem}FunctionRole`, {
      description: `Role of batchdrop's ${name} function`,
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      inlinePolicies: {
        [name]: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'WriteOwnLogs',
              actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
              resources: [logGroup.logGroupArn],
            }),
            ...s.statements,
          ],
        }),
      },
    });
    const options: lambda.FunctionOptions = {
      description: s.description,
      role,
      memorySize: s.memorySize,
      timeout: Duration.seconds(s.timeout),
      ephemeralStorageSize: s.ephemeralStorageMiB ? Size.mebibytes(s.ephemeralStorageMiB) : undefined,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: logLevel as lambda.ApplicationLogLevel,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      logGroup,
      environment: { ...environment, ...s.environment },
    };
    let fn: lambda.Function;
    if ('lambdaDir' in code) {
      const codeDir = path.join(code.lambdaDir, name);
      if (!fs.existsSync(path.join(codeDir, 'bootstrap'))) {
        throw new Error(
          `BatchdropPipeline: ${path.join(codeDir, 'bootstrap')} does not exist; build the functions first ` +
            '(`make build-functions`, or `cargo lambda build --release --arm64 --lambda-dir <folder>`), or leave ' +
            'lambdaDir unset to build them at synth time',
        );
      }
      fn = new lambda.Function(this, `${stem}Function`, {
        ...options,
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: lambda.Architecture.ARM_64,
        handler: 'bootstrap',
        code: lambda.Code.fromAsset(codeDir),
      });
    } else {
      // `cargo lambda build --release --arm64 --bin <name> --flatten <name>` in the workspace's folder, into
      // the asset's folder of cdk.out. The function crates are workspace members, not the root package, so
      // the binary needs its --package; --locked builds what Cargo.lock pins. CARGO_TARGET_DIR, when set,
      // is where cargo keeps its build cache, else target/ of the workspace. The asset is named after the
      // binary's hash, and two stacks of one app share each function's build.
      fn = new RustFunction(this, `${stem}Function`, {
        ...options,
        runtime: 'provided.al2023',
        architecture: lambda.Architecture.ARM_64,
        manifestPath: code.manifestPath,
        binaryName: name,
        bundling: { cargoLambdaFlags: ['--locked', '--package', name] },
      });
    }
    // The Function class makes the function depend on its role, which the Role property's GetAtt already does
    // (cfn-lint W3005). The role's policies are inline, so nothing else needs to exist first.
    (fn.node.defaultChild as CfnResource).addDeletionOverride('DependsOn');
    return fn;
  }
}

type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The functions' code: prebuilt (`<lambdaDir>/<name>/bootstrap`), or built from the workspace's manifest. */
type FunctionCode = { readonly lambdaDir: string } | { readonly manifestPath: string };

interface FunctionSettings {
  readonly description: string;
  readonly memorySize: number;
  readonly timeout: number;
  readonly ephemeralStorageMiB?: number;
  readonly environment?: Record<string, string>;
  readonly statements: iam.PolicyStatement[];
}
