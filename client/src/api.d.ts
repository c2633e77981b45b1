// The API's types are the ones `npm run generate` writes from openapi/openapi.yaml. In the
// package, scripts/build.js puts a copy of that file here (dist/api.d.ts) in place of this
// re-export.
export type * from '../../generated/api.js';
