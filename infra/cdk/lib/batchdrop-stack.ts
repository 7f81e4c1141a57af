// BatchdropStack: a stack that holds BatchdropPipeline (construct id "Batchdrop") and nothing else, with the SAM
// template's outputs under the same names. The example app (bin/app.ts) deploys it; the template checks
// compare its synth with the SAM template's, outputs included.

import { CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';

import { BatchdropPipeline, BatchdropPipelineProps } from './batchdrop-pipeline';

export interface BatchdropStackProps extends StackProps {
  /** The construct's props: the SAM template's parameters, and lambdaDir. */
  readonly pipeline?: BatchdropPipelineProps;
}

export class BatchdropStack extends Stack {
  public readonly pipeline: BatchdropPipeline;

  constructor(scope: Construct, id: string, props: BatchdropStackProps = {}) {
    super(scope, id, props);
    this.pipeline = new BatchdropPipeline(this, 'Batchdrop', props.pipeline);
    const p = this.pipeline;
    // [output, its description, its value], as the SAM template's Outputs.
    const outputs: [string, string, string][] = [
      ['InputBucketName', 'Bucket to drop OpenAI batch files into (under inbox/, optionally inbox/<model-id>/).',
        p.inputBucket.bucketName],
      ['JobQueueTableName', "The account-wide job queue's DynamoDB table (docs/queue.md).", p.jobQueueTable.tableName],
      ['OutputBucketName', 'Bucket holding results/<batch-id>/output.jsonl, errors.jsonl and batch.json.',
        p.outputBucket.bucketName],
      ['StateMachineArn', 'The state machine that follows each batch; its executions are named after the batch ids.',
        p.stateMachine.stateMachineArn],
      ['BedrockServiceRoleArn', "Role Bedrock assumes for batchdrop's jobs.", p.bedrockServiceRole.roleArn],
      ['SubmitFailureQueueUrl', 'Upload events the submit function failed on after its retries.',
        p.submitFailureQueue.queueUrl],
      ['EventSchemaArn', "The completion event's schema in the EventBridge schema registry.", p.eventSchema.ref],
      ['SubmitCommand', 'Submits a batch file (replace FILE).', `aws s3 cp FILE s3://${p.inputBucket.bucketName}/inbox/`],
    ];
    for (const [id, description, value] of outputs) {
      new CfnOutput(this, id, { description, value });
    }
  }
}
