import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { environmentVariables, parseDuration } from '../../src/config/index.js';
import { projectRoot } from '../../src/paths.js';

/** The deployment files, read as the tools that apply them read them. */

export const deployDir = join(projectRoot, 'deploy');
export const kubernetesDir = join(deployDir, 'kubernetes');

export function readText(relative: string): string {
  return readFileSync(join(projectRoot, relative), 'utf8');
}

/** Every document of every manifest in deploy/kubernetes, kustomization.yaml aside. */
export function kubernetesManifests(): { file: string; document: Record<string, unknown> }[] {
  return readdirSync(kubernetesDir)
    .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(kubernetesDir, file), 'utf8')).map((parsed) => {
        if (parsed.errors.length > 0) throw new Error(`${file}: ${parsed.errors.join('; ')}`);
        return { file, document: parsed.toJS() as Record<string, unknown> };
      }),
    );
}

/** docker-compose.yml, with its YAML merge keys (`<<: *anchor`) applied as Compose does. */
export function composeFile(): Record<string, unknown> {
  return parse(readText('docker-compose.yml'), { merge: true }) as Record<string, unknown>;
}

/** The names a deployment file may set: those src/config/ reads. */
export function isKnownVariable(name: string): boolean {
  return environmentVariables.includes(name);
}

/** Seconds of a duration setting such as SHUTDOWN_TIMEOUT ('20s', '1m', '20'). */
export function seconds(text: string): number {
  return parseDuration(text);
}

/**
 * The source of a file `npm run build` makes (tsconfig.build.json: src/ → dist/), and
 * whether the built file is there when dist/ exists (CI builds before it tests).
 */
export function builtFrom(builtPath: string): {
  source: string;
  sourceExists: boolean;
  built: boolean | null;
} {
  const match = /^dist\/(.+)\.js$/.exec(builtPath);
  const source = match ? `src/${match[1]}.ts` : '';
  return {
    source,
    sourceExists: source !== '' && existsSync(join(projectRoot, source)),
    built: existsSync(join(projectRoot, 'dist')) ? existsSync(join(projectRoot, builtPath)) : null,
  };
}

/** The paths /health and /ready etc. the spec declares (the server serves the spec's paths). */
export function specPaths(): string[] {
  const spec = parse(readText('openapi/openapi.yaml')) as { paths: Record<string, unknown> };
  return Object.keys(spec.paths);
}
