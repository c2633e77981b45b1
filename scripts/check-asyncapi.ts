/**
 * Part of npm run check (`npm run lint:asyncapi`): openapi/asyncapi.yaml, the WebSocket's
 * contract, as @asyncapi/parser reads it (its $refs into openapi.yaml resolved from the
 * file's path), and generated/asyncapi.json, the same document standing alone. An error or
 * a warning fails the check; information and hints are listed, and the ones known here
 * are explained instead. The parser does not check messages' examples against their
 * payloads: this does, with the server's own reader and check (src/http/live-messages.ts),
 * and every message must have one.
 *
 * - asyncapi-latest-version: the document is AsyncAPI 3.0.0 on purpose; 3.1 adds nothing
 *   it uses, and 3.0 is what the docs renderer and Redocly read.
 */
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DiagnosticSeverity, fromFile, Parser } from '@asyncapi/parser';
import { createLiveContract, messageSides, type LiveDocument } from '../src/http/live-messages.js';
import type { ServerMessage } from '../generated/asyncapi.js';
import { asyncApiSourcePath, bundledAsyncApiPath, projectRoot } from '../src/paths.js';
import { loadAsyncApi } from '../src/spec.js';

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

type Examples = { examples?: Array<{ name?: string; payload?: unknown }> };

/**
 * The messages of `document` without an example, and each example that is not a valid
 * message of its side: the client's read as the server reads a frame, the server's
 * checked as in development.
 */
export function exampleProblems(document: LiveDocument): string[] {
  const contract = createLiveContract(document);
  const { client } = messageSides(document);
  const problems: string[] = [];
  for (const [name, message] of Object.entries(document.components.messages)) {
    const examples = (message as Examples).examples ?? [];
    if (examples.length === 0) problems.push(`message ${name} has no example`);
    for (const [index, { name: label = String(index), payload }] of examples.entries()) {
      const where = `message ${name}, example ${label}`;
      if (client.has(name)) {
        const reading = contract.readClientMessage(JSON.stringify(payload));
        if (!reading.ok) problems.push(`${where}: ${JSON.stringify(reading.error.problem)}`);
      } else {
        try {
          contract.checkServerMessage(payload as ServerMessage);
        } catch (error) {
          problems.push(`${where}: ${(error as Error).message}`);
        }
      }
    }
  }
  return problems;
}

async function main(): Promise<number> {
  let failed = false;
  for (const problem of exampleProblems(loadAsyncApi())) {
    console.error(`generated/asyncapi.json: ${problem}`);
    failed = true;
  }
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
