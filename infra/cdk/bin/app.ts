// The example app: a stack of your own with batchdrop in it, and the SAM template's outputs.
//
//   cd infra/cdk
//   npx cdk synth -c account=123456789012 -c region=us-east-1      # offline: the account and Region are explicit
//   npx cdk deploy                                                  # with credentials: CDK_DEFAULT_ACCOUNT/REGION
//
// Optional context: -c stackName=… -c outputKmsKeyId=arn:aws:kms:… -c alarmTopicArn=arn:aws:sns:…
// -c defaultModel=… -c bucketNamePrefix=…. The functions must be built first (`make build-functions`).

import { App, CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';

import { BatchdropPipeline, BatchdropPipelineProps } from '../lib/batchdrop-pipeline';

export interface ExampleStackProps extends StackProps {
  readonly pipeline?: BatchdropPipelineProps;
}

export class ExampleStack extends Stack {
  public readonly pipeline: BatchdropPipeline;

  constructor(scope: Construct, id: string, props: ExampleStackProps = {}) {
    super(scope, id, props);
    this.pipeline = new BatchdropPipeline(this, 'Batchdrop', props.pipeline);
    const p = this.pipeline;
    new CfnOutput(this, 'InputBucketName', {
      description: 'Bucket to drop OpenAI batch files into (under inbox/, optionally inbox/<model-id>/).',
      value: p.inputBucket.bucketName,
    });
    new CfnOutput(this, 'OutputBucketName', {
      description: 'Bucket holding results/<batch-id>/output.jsonl, errors.jsonl and batch.json.',
      value: p.outputBucket.bucketName,
    });
    new CfnOutput(this, 'StateMachineArn', {
      description: 'The state machine that follows each batch; its executions are named after the batch ids.',
      value: p.stateMachine.stateMachineArn,
    });
    new CfnOutput(this, 'BedrockServiceRoleArn', {
      description: "Role Bedrock assumes for batchdrop's jobs.",
      value: p.bedrockServiceRole.roleArn,
    });
    new CfnOutput(this, 'SubmitFailureQueueUrl', {
      description: 'Upload events the submit function failed on after its retries.',
      value: p.submitFailureQueue.queueUrl,
    });
    new CfnOutput(this, 'EventSchemaArn', {
      description: "The completion event's schema in the EventBridge schema registry.",
      value: p.eventSchema.ref,
    });
    new CfnOutput(this, 'SubmitCommand', {
      description: 'Submits a batch file (replace FILE).',
      value: `aws s3 cp FILE s3://${p.inputBucket.bucketName}/inbox/`,
    });
  }
}

if (require.main === module) {
  const app = new App();
  const context = (key: string): string | undefined => app.node.tryGetContext(key);
  new ExampleStack(app, context('stackName') ?? 'Batchdrop', {
    env: {
      account: context('account') ?? process.env.CDK_DEFAULT_ACCOUNT,
      region: context('region') ?? process.env.CDK_DEFAULT_REGION,
    },
    pipeline: {
      bucketNamePrefix: context('bucketNamePrefix'),
      defaultModel: context('defaultModel'),
      outputKmsKeyId: context('outputKmsKeyId'),
      alarmTopicArn: context('alarmTopicArn'),
    },
  });
}
