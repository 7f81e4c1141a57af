// The package's entry point (@batchdrop/cdk): the construct, a stack that holds it, and their props' types.

export {
  BatchdropPipeline, FUNCTION_NAMES, LOG_LEVELS, LOG_RETENTION_DAYS, TEMPERATURE_POLICIES,
} from './batchdrop-pipeline';
export type { BatchdropPipelineProps, LogLevel, LogRetentionDays, TemperaturePolicy } from './batchdrop-pipeline';
export { BatchdropStack } from './batchdrop-stack';
export type { BatchdropStackProps } from './batchdrop-stack';
