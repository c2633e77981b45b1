# syntax=docker/dockerfile:1
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No postinstall here: it needs src/ (it prepares `npm start` and the embedded database's
# template), and this image builds with tsc instead.
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
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only. PGlite is one of them: without DATABASE_URL the server runs
# the embedded database (dist/db/embedded/: its engine thread and initdb process). tsx and
# esbuild, which only `npm run dev` and `npm start` use, are development dependencies.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY generated ./generated
COPY drizzle ./drizzle
# initdb once, at build time: a new embedded data folder then starts as a copy of it.
RUN node dist/db/embedded/initdb-process.js --template
# The embedded database (used when DATABASE_URL is unset) lives here, with the socket the
# server serves it on to other processes in the container.
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node
EXPOSE 3333
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3333)+'/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/server.js"]
