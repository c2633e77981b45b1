import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import type { components } from '../../generated/api.js';

type Problem = components['schemas']['Problem'];
type Location = components['schemas']['ProblemItem']['location'];

/**
 * Asserts an RFC 9457 problem with this status and code and every field of the Problem
 * shape (`errors` only on validation errors and conflicts), and returns it.
 */
export function expectProblem(
  res: LightMyRequestResponse,
  status: number,
  code: Problem['code'],
  instance?: string,
): Problem {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json\b/);
  const problem = res.json<Problem>();
  expect(problem).toMatchObject({
    type: `/problems/${code.toLowerCase().replace(/_/g, '-')}`,
    title: expect.any(String),
    status,
    code,
    detail: expect.any(String),
    instance: expect.any(String),
  });
  if (instance !== undefined) expect(problem.instance).toBe(instance);
  if (code === 'VALIDATION_ERROR') {
    expect(problem.errors, 'a validation error lists its errors').toBeDefined();
    for (const error of problem.errors ?? []) {
      expect(error).toEqual({
        location: expect.any(String),
        pointer: expect.any(String),
        message: expect.any(String),
      });
    }
  } else if (code !== 'CONFLICT') {
    expect(problem.errors).toBeUndefined();
  }
  return problem;
}

/** A 400 VALIDATION_ERROR whose errors include one at this location and pointer. */
export function expectValidationError(
  res: LightMyRequestResponse,
  location: Location,
  pointer: string,
): Problem {
  const problem = expectProblem(res, 400, 'VALIDATION_ERROR');
  expect(problem.errors).toEqual(
    expect.arrayContaining([expect.objectContaining({ location, pointer })]),
  );
  return problem;
}

/** A 400 VALIDATION_ERROR whose errors are all at `location` and name exactly `pointers`. */
export function expectInvalid(
  res: LightMyRequestResponse,
  location: Location,
  pointers: string[],
): Problem {
  const problem = expectProblem(res, 400, 'VALIDATION_ERROR');
  const errors = problem.errors ?? [];
  expect(errors.length).toBeGreaterThan(0);
  expect(errors.map((e) => e.location)).toEqual(errors.map(() => location));
  expect([...new Set(errors.map((e) => e.pointer))].sort()).toEqual([...pointers].sort());
  return problem;
}
