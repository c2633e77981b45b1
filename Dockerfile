# syntax=docker/dockerfile:1
# The API's image: `docker build .` (the production stage). Every command here is one CI
# runs outside a container too (npm ci, npm run build, node dist/db/migrate.js,
# node dist/server.js); tests/deploy/dockerfile.test.ts checks that what it copies exists
# and that the commands' files are what `npm run build` makes.

# Node's current LTS. The code runs on Node 20, 22 and 24 (CI tests 20 and 24).
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No postinstall here: it needs src/ (it prepares `npm start`), and this image builds
# with tsc instead.
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY generated ./generated
RUN npm run build

# `docker compose --profile mock up mock`: `npm run mock` (the server's contract layer in
# front of Prism, both development dependencies) on 0.0.0.0:4010. Not the default target:
# a plain `docker build .` builds the production stage below.
FROM deps AS mock
COPY tsconfig.json ./
COPY src ./src
COPY scripts/mock.ts ./scripts/mock.ts
COPY generated ./generated
USER node
EXPOSE 4010
CMD ["node_modules/.bin/tsx", "scripts/mock.ts", "--host", "0.0.0.0", "--port", "4010"]

FROM node:24-bookworm-slim AS production
ENV NODE_ENV=production
# The server listens on 127.0.0.1 unless told otherwise; in a container, traffic comes from
# outside it.
ENV HOST=0.0.0.0
# The young-generation size of Node 20 and 22 (what `npm start` sets too): Node 24's larger
# default costs about 110 MB of resident memory per process.
ENV NODE_OPTIONS=--max-semi-space-size=16
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: not the development tools (tsx, esbuild, TypeScript, the
# test tools), and not the embedded database's PostgreSQL binaries (the optional
# dependencies, 60 MB): production always has DATABASE_URL, and without it the server
# says so and exits.
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force
# Owned by root and read-only to the `node` user the server runs as.
COPY --from=build /app/dist ./dist
COPY generated ./generated
COPY drizzle ./drizzle
# The server writes no file: the root filesystem can be read-only (deploy/kubernetes).
# The `node` user of the base image (uid 1000), by number so that Kubernetes'
# runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 3333
# /ready: the database answers. The server turns it 503 at once on SIGTERM.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3333)+'/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
# Migrations: `node dist/db/migrate.js` (docker-compose.yml's migrate service, the
# Kubernetes Job), before the servers of a new release start. The job worker is the same
# image with `node dist/worker.js` (its probes on WORKER_PORT, not on PORT).
CMD ["node", "dist/server.js"]
