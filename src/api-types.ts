import type { components } from '../generated/api.js';

/**
 * Short names for the contract's types (generated/api.d.ts), for every layer: the API's
 * shapes are the spec's, never copies written by hand.
 */
export type Schemas = components['schemas'];
export type Problem = Schemas['Problem'];
export type ProblemCode = Problem['code'];
export type ProblemItem = Schemas['ProblemItem'];
