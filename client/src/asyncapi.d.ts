// The WebSocket's types are the ones `npm run generate` writes from openapi/asyncapi.yaml. In
// the package, scripts/build.js puts a copy of that file here (dist/asyncapi.d.ts) in place
// of this re-export.
export type * from '../../generated/asyncapi.js';
