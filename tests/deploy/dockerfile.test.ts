import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { builtFrom, composeFile, readText } from './files.js';

/**
 * The Dockerfile, without a Docker engine: its instructions read as Docker reads them, and
 * checked against the project: what it copies exists and is not left out by
 * .dockerignore, the final stage has production dependencies only, runs as a non-root
 * user, has a HEALTHCHECK, and its command is a file `npm run build` makes.
 */

interface Instruction {
  keyword: string;
  args: string;
}

/** The instructions, continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

/** The stages, by name, each with its instructions. */
function stages(text: string): Map<string, { from: string; steps: Instruction[] }> {
  const result = new Map<string, { from: string; steps: Instruction[] }>();
  let current: Instruction[] | undefined;
  for (const instruction of instructions(text)) {
    if (instruction.keyword === 'FROM') {
      const [image = '', , name = String(result.size)] = instruction.args.split(/\s+/);
      current = [];
      result.set(name, { from: image, steps: current });
    } else {
      current?.push(instruction);
    }
  }
  return result;
}

const dockerfile = readText('Dockerfile');
const allStages = stages(dockerfile);
const finalName = [...allStages.keys()].at(-1) ?? '';
const final = allStages.get(finalName);

function execForm(args: string): string[] {
  return JSON.parse(args) as string[];
}

/** .dockerignore's entries (only plain names are used there: no patterns to interpret). */
function ignored(): string[] {
  return readText('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

describe('Dockerfile', () => {
  it('builds on the current Node LTS, in stages, with the production stage last', () => {
    expect(finalName).toBe('production');
    for (const { from } of allStages.values()) {
      expect(from).toMatch(/^(node:24-bookworm-slim|deps|build)$/);
    }
    expect(allStages.get('build')?.steps).toContainEqual({ keyword: 'RUN', args: 'npm run build' });
  });

  it('copies only files that exist and that .dockerignore lets through', () => {
    const excluded = ignored();
    for (const [name, { steps }] of allStages) {
      for (const { args } of steps.filter((step) => step.keyword === 'COPY')) {
        if (args.startsWith('--from=')) continue;
        const sources = args.split(/\s+/).slice(0, -1);
        for (const source of sources) {
          expect(existsSync(join(projectRoot, source)), `${name}: COPY ${source}`).toBe(true);
          const top = source.replace(/^\.\//, '').split('/')[0] ?? '';
          expect(excluded, `${name}: ${source} is in .dockerignore`).not.toContain(top);
        }
      }
    }
  });

  it('keeps development dependencies and sources out of the final stage', () => {
    const steps = final?.steps ?? [];
    const installs = steps.filter((step) => step.keyword === 'RUN' && /npm ci/.test(step.args));
    expect(installs).toHaveLength(1);
    expect(installs[0]?.args).toMatch(/npm ci --omit=dev/);
    // No database binaries in production: the embedded PostgreSQL is an optional dependency.
    expect(installs[0]?.args).toMatch(/--omit=optional/);
    const copied = steps
      .filter((step) => step.keyword === 'COPY')
      .map((step) => step.args.split(/\s+/).slice(0, -1).join(' '));
    expect(copied).toEqual([
      'package.json package-lock.json',
      '--from=build /app/dist',
      'generated',
      'drizzle',
    ]);
    expect(steps).toContainEqual({ keyword: 'ENV', args: 'NODE_ENV=production' });
  });

  it('listens on every interface of the container (the server alone listens on 127.0.0.1)', () => {
    expect(final?.steps ?? []).toContainEqual({ keyword: 'ENV', args: 'HOST=0.0.0.0' });
  });

  it('runs as a non-root user, by number, with a HEALTHCHECK on /ready', () => {
    const steps = final?.steps ?? [];
    const user = steps.filter((step) => step.keyword === 'USER').at(-1)?.args ?? '';
    expect(user).toMatch(/^[1-9][0-9]*(:[1-9][0-9]*)?$/);
    // The Kubernetes manifests run it as the same user.
    expect(readText('deploy/kubernetes/deployment.yaml')).toContain(
      `runAsUser: ${user.split(':')[0] ?? ''}`,
    );
    const healthcheck = steps.find((step) => step.keyword === 'HEALTHCHECK')?.args ?? '';
    expect(healthcheck).toMatch(/\/ready/);
  });

  it('starts `node dist/server.js` (compose and Kubernetes run the same), a file `npm run build` makes', () => {
    const command = execForm(
      final?.steps.filter((step) => step.keyword === 'CMD').at(-1)?.args ?? '[]',
    );
    expect(command).toEqual(['node', 'dist/server.js']);
    const compose = composeFile() as { services: Record<string, { command?: string[] }> };
    expect(compose.services.api?.command).toEqual(command);
    const files = [command[1] ?? '', 'dist/db/migrate.js'];
    for (const file of files) {
      const built = builtFrom(file);
      expect(built.sourceExists, built.source).toBe(true);
      if (built.built !== null) expect(built.built, file).toBe(true);
    }
  });
});
