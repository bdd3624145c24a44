# The image for the project's processes (docker-compose.yml runs it as migrate, ingest and
# worker). The `hunt` command runs the TypeScript sources through tsx, a production
# dependency, so there is no build step: install production dependencies, copy the sources.
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so a source change does not reinstall them. patches/ holds fixes to
# dependencies that npm ci's postinstall (patch-package) applies.
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
# src/cli imports infra/stack for `hunt stack` and `hunt start`, so the CLI needs it to load.
COPY infra ./infra
COPY workflows ./workflows

# The default state folder (HUNT_STATE_DIR), writable by the unprivileged user.
RUN mkdir -p /app/.hunt && chown node:node /app/.hunt
USER node

# Every interface of the container: the code's default (127.0.0.1) keeps a laptop's API and
# metrics off the network, but inside a container it leaves a published port reaching nothing.
# Which ports the world reaches is the deployment's choice (-p, a Service, a network policy).
ENV API_BIND_ADDRESS=0.0.0.0
ENV WORKER_METRICS_BIND_ADDRESS=0.0.0.0
EXPOSE 8080
CMD ["node", "bin/hunt.js", "ingest"]
