import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    alias: {
      // graphql 16 ships CommonJS (`main`) and ES modules (`module`): Node loads the former
      // for everybody (the packages in node_modules included), Vite would give the tests the
      // latter, and graphql refuses a schema from one in the other ("another realm").
      graphql: require.resolve('graphql'),
    },
  },
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/helpers/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
