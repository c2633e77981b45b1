/**
 * Part of npm run check (`npm run lint:asyncapi`): openapi/asyncapi.yaml, the WebSocket's
 * contract, as @asyncapi/parser reads it (its $refs into openapi.yaml resolved from the
 * file's path), and generated/asyncapi.json, the same document standing alone. An error or
 * a warning fails the check; information and hints are listed, and the ones known here
 * are explained instead:
 * - asyncapi-latest-version: the document is AsyncAPI 3.0.0 on purpose; 3.1 adds nothing
 *   it uses, and 3.0 is what the docs renderer and Redocly read.
 */
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DiagnosticSeverity, fromFile, Parser } from '@asyncapi/parser';
import { asyncApiSourcePath, bundledAsyncApiPath, projectRoot } from '../src/paths.js';

const explained = new Set(['asyncapi-latest-version']);

export interface AsyncApiFinding {
  severity: 'error' | 'warning' | 'information' | 'hint';
  code: string;
  path: string;
  message: string;
}

const severities = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'information',
  [DiagnosticSeverity.Hint]: 'hint',
} as const;

/** What @asyncapi/parser says of the document at `path`, less what is explained above. */
export async function lintAsyncApi(path: string): Promise<AsyncApiFinding[]> {
  const { diagnostics } = await fromFile(new Parser(), path).parse();
  return diagnostics
    .map((diagnostic) => ({
      severity: severities[diagnostic.severity],
      code: String(diagnostic.code),
      path: diagnostic.path.join('.'),
      message: diagnostic.message,
    }))
    .filter((finding) => !explained.has(finding.code));
}

async function main(): Promise<number> {
  let failed = false;
  for (const path of [asyncApiSourcePath, bundledAsyncApiPath]) {
    const findings = await lintAsyncApi(path);
    const name = relative(projectRoot, path);
    for (const { severity, code, path: at, message } of findings)
      console.error(`${name}: ${severity} ${code} at ${at || '/'}: ${message}`);
    if (findings.some(({ severity }) => severity === 'error' || severity === 'warning'))
      failed = true;
    else console.log(`${name}: a valid AsyncAPI document, without warnings.`);
  }
  return failed ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main();
}
