// The construct's props against the SAM template's parameters (`make validate`, after target/sam/template.json
// is made): each parameter is a prop of the same name in camelCase, the construct refuses at synth exactly the
// values the parameter's constraints refuse (AllowedPattern, AllowedValues, MinLength, MinValue, MaxValue) and
// names the prop when it does, and the example app takes each prop from the context.
//
//   node_modules/.bin/tsx --test infra/cdk/test/props.test.ts

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';

import { BatchdropPipeline, BatchdropPipelineProps } from '@batchdrop/cdk';
import { fromContext } from '../bin/app';
import { placeholderLambdaDir } from './placeholder';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const SAM_TEMPLATE = path.join(REPO_ROOT, 'target', 'sam', 'template.json');

interface Parameter {
  Type: 'String' | 'Number';
  Default: string | number;
  AllowedPattern?: string;
  AllowedValues?: (string | number)[];
  MinLength?: number;
  MinValue?: number;
  MaxValue?: number;
}

const parameters: Record<string, Parameter> = JSON.parse(fs.readFileSync(SAM_TEMPLATE, 'utf8')).Parameters;
const propName = (parameter: string) => parameter[0].toLowerCase() + parameter.slice(1);

/** Prebuilt placeholder functions, so that no construct here builds anything. */
const lambdaDir = placeholderLambdaDir(fs.mkdtempSync(path.join(os.tmpdir(), 'batchdrop-props-')));

/** The construct's verdict on props: undefined when it builds, else its error message. */
function refusal(props: Record<string, unknown>): string | undefined {
  const stack = new Stack(new App(), 'Props', { env: { account: '123456789012', region: 'us-east-1' } });
  try {
    new BatchdropPipeline(stack, 'Batchdrop', { lambdaDir, ...props } as BatchdropPipelineProps);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Strings to try against every AllowedPattern: edges of each pattern in this template, and their neighbours. */
const STRINGS = [
  '', 'a', 'ab', 'batchdrop', 'my-app-2', 'Ab', '-ab', 'ab-', 'a_b', 'a'.repeat(25), 'a'.repeat(26),
  'default', 'my.bus_1-x', 'a/b', 'aws.partner/saas/bus', 'x'.repeat(256), 'x'.repeat(257), ' default',
  'arn:aws:events:us-east-1:123456789012:event-bus/ops',
  'arn:aws:kms:us-east-1:123456789012:key/0b5e2f4c-1d3a-4e5f-8a9b-0c1d2e3f4a5b',
  'arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234',
  'arn:aws:kms:us-east-1:123456789012:alias/ops', 'arn:aws:kms:us-east-1:1234:key/abc',
  'arn:aws:sns:us-east-1:123456789012:batchdrop-alarms', 'arn:aws:sns:us-east-1:123456789012:a.fifo',
  'arn:aws:sns:us-east-1:123456789012:' + 't'.repeat(257), 'arn:aws:sqs:us-east-1:123456789012:q',
  'config/models.json', 'config/team/models-2.json', 'config/.json', 'config/models.txt', 'inbox/models.json',
  'config/my models.json', '/config/models.json',
];

describe('each SAM parameter is a prop with the same constraints', () => {
  it('has parameters to compare with', () => {
    assert.ok(Object.keys(parameters).length >= 20, `${SAM_TEMPLATE} lists ${Object.keys(parameters).length}`);
  });

  it('takes the defaults', () => {
    assert.equal(refusal({}), undefined);
  });

  for (const [name, p] of Object.entries(parameters)) {
    const prop = propName(name);
    const refused = (value: unknown) => {
      const why = refusal({ [prop]: value });
      if (why !== undefined) {
        assert.ok(why.includes(prop), `the refusal of ${prop}=${JSON.stringify(value)} does not name it: ${why}`);
      }
      return why !== undefined;
    };

    it(`${name} (${prop}): its default is accepted`, () => {
      const value = p.Default === '' ? undefined : p.Default;
      assert.equal(refused(value), false);
    });

    if (p.AllowedPattern !== undefined) {
      const pattern = new RegExp(p.AllowedPattern);
      it(`${name}: accepted exactly when ${p.AllowedPattern} matches`, () => {
        for (const s of STRINGS) {
          assert.equal(refused(s), !pattern.test(s), `${prop}=${JSON.stringify(s)}`);
        }
      });
    }
    if (p.MinLength !== undefined) {
      it(`${name}: at least ${p.MinLength} characters`, () => {
        assert.equal(refused('x'.repeat(p.MinLength ?? 0)), false);
        assert.equal(refused('x'.repeat((p.MinLength ?? 0) - 1)), true);
      });
    }
    if (p.AllowedValues !== undefined) {
      const allowed = p.AllowedValues;
      it(`${name}: one of ${allowed.join(', ')}`, () => {
        for (const v of allowed) {
          assert.equal(refused(p.Type === 'Number' ? Number(v) : v), false, `${prop}=${v}`);
        }
        const outside = p.Type === 'Number' ? [0, 2, 4000, Number(allowed[0]) + 0.5] : ['info', 'VERBOSE', ''];
        for (const v of outside) {
          assert.equal(refused(v), true, `${prop}=${v}`);
        }
      });
    }
    if (p.MinValue !== undefined) {
      const min = p.MinValue;
      it(`${name}: at least ${min}`, () => {
        assert.equal(refused(min), false);
        assert.equal(refused(min - 1), true);
        assert.equal(refused(min - 0.001), true);
      });
    }
    if (p.MaxValue !== undefined) {
      const max = p.MaxValue;
      it(`${name}: at most ${max}`, () => {
        assert.equal(refused(max), false);
        assert.equal(refused(max + 1), true);
      });
    }
    if (p.Type === 'Number') {
      it(`${name}: a number, ${prop === 'pollFactor' ? 'fractions allowed' : 'whole'}`, () => {
        assert.equal(refused(String(p.Default)), true, 'a string is not a number');
        assert.equal(refused(Number.NaN), true);
        assert.equal(refused(Number(p.Default) + 0.5), prop !== 'pollFactor');
      });
    }
  }

  it('refuses a staging retention shorter than the longest batch and a day', () => {
    const longest = { queueTimeoutHours: 168, jobTimeoutHours: 168, outageBudgetHours: 48, stopWaitMinutes: 1440 };
    // (168 + 168 + 48) h + 1440 min = 17 days, plus a day.
    assert.match(refusal({ ...longest, stagingRetentionDays: 17 }) ?? '', /stagingRetentionDays/);
    assert.equal(refusal({ ...longest, stagingRetentionDays: 18 }), undefined);
  });

  it('lists every problem at once', () => {
    const why = refusal({ bucketNamePrefix: 'A', jobTimeoutHours: 1, logLevel: 'LOUD' }) ?? '';
    for (const prop of ['bucketNamePrefix', 'jobTimeoutHours', 'logLevel']) {
      assert.ok(why.includes(prop), `${prop} missing from: ${why}`);
    }
  });

  it('says which function is missing from lambdaDir', () => {
    const partial = placeholderLambdaDir(fs.mkdtempSync(path.join(os.tmpdir(), 'batchdrop-props-')), ['submit']);
    assert.match(refusal({ lambdaDir: partial }) ?? '', /check-jobs[/\\]bootstrap does not exist/);
  });
});

describe("a deployment's own model catalogue", () => {
  it('is named to every function, which alone may read it', () => {
    const stack = new Stack(new App(), 'Catalogue', { env: { account: '123456789012', region: 'us-east-1' } });
    new BatchdropPipeline(stack, 'Batchdrop', { lambdaDir, modelCatalogueKey: 'config/models.json' });
    const resources = Object.values(Template.fromStack(stack).toJSON().Resources as Record<string, any>);
    const functions = resources.filter((r) => r.Type === 'AWS::Lambda::Function');
    assert.equal(functions.length, 4);
    for (const f of functions) {
      assert.equal(f.Properties.Environment.Variables.MODEL_CATALOGUE_KEY, 'config/models.json');
    }
    const readers = resources
      .filter((r) => r.Type === 'AWS::IAM::Role')
      .filter((r) => JSON.stringify(r.Properties.Policies ?? []).includes('"ReadModelCatalogue"'));
    assert.equal(readers.length, 4);
    assert.ok(JSON.stringify(readers[0].Properties.Policies).includes('/config/models.json'));
  });
});

describe('the example app takes every prop from the context', () => {
  it('takes each parameter by its prop name, numbers parsed', () => {
    for (const [name, p] of Object.entries(parameters)) {
      const prop = propName(name);
      const value = p.Type === 'Number' ? String(p.Default) : String(p.Default || 'x');
      const { pipeline } = fromContext({ [prop]: value });
      assert.deepEqual(pipeline, { [prop]: p.Type === 'Number' ? Number(p.Default) : value }, prop);
    }
  });

  it('takes lambdaDir, stackName, account and region, and leaves the CLI keys alone', () => {
    const { app, pipeline } = fromContext({
      lambdaDir: 'build/lambda', stackName: 'Mine', account: '123456789012', region: 'eu-west-1',
      'aws:cdk:enable-path-metadata': true, '@aws-cdk/core:newStyleStackSynthesis': true,
    });
    assert.deepEqual(pipeline, { lambdaDir: 'build/lambda' });
    assert.deepEqual(app, { stackName: 'Mine', account: '123456789012', region: 'eu-west-1' });
  });

  it('refuses an unknown key and a number that is not one, naming them and the valid keys', () => {
    assert.throws(() => fromContext({ jobTimeoutHour: '48' }), /unknown context key "jobTimeoutHour".*jobTimeoutHours/);
    assert.throws(() => fromContext({ jobTimeoutHours: '48h' }), /jobTimeoutHours is "48h", not a number/);
    assert.throws(() => fromContext({ defaultModel: 7 }), /defaultModel is 7, not a string/);
  });
});
