// Placeholder functions for the synths that never build (checks-app.ts, props.test.ts): a folder in the
// `lambdaDir` layout, `<dir>/<function>/bootstrap`, whose bootstraps are not functions. A template made with them
// can be read and checked, never deployed.

import * as fs from 'node:fs';
import * as path from 'node:path';

import { FUNCTION_NAMES } from '@batchdrop/cdk';

const PLACEHOLDER = '#!/bin/sh\n# placeholder for the checks; not a function\nexit 1\n';

/** Writes a placeholder bootstrap for each of `names` (default: every function) into `dir`; returns `dir`. */
export function placeholderLambdaDir(dir: string, names: readonly string[] = FUNCTION_NAMES): string {
  for (const name of names) {
    fs.mkdirSync(path.join(dir, name), { recursive: true });
    fs.writeFileSync(path.join(dir, name, 'bootstrap'), PLACEHOLDER, { mode: 0o755 });
  }
  return dir;
}
