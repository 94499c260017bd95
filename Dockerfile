# Errand worker image: the example app's worker under `errand worker` (replace packages/examples with your app).
# Build from the repository root: docker build -t errand-worker .
# Node runs the TypeScript sources directly (type stripping, Node >= 22.19): there is no build step.

# ---- dependencies: those of the worker app and of the workspace packages it uses ----
# Not --prod: the workspace packages are linked as sources, and @errand/core finds `effect` (its peer) through its own
# dev dependency. Checked with the same command (--offline) in a copy of the repository: the worker then runs.
FROM node:22-bookworm-slim AS deps
WORKDIR /app
RUN npm install --global pnpm@12.4.2
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./
COPY docs/package.json docs/
COPY packages/ packages/
RUN pnpm install --frozen-lockfile --no-optional --filter "@errand/examples..."

# ---- runtime: no pnpm, no compilers, not root ----
FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production
# pg_dump, for the weekly backup_database job on PostgreSQL
RUN apt-get update && apt-get install --yes --no-install-recommends postgresql-client \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps --chown=node:node /app /app
USER node
# /metrics, /healthz, /readyz (with --processes N: 9191 … 9191+N-1, one port per worker process)
EXPOSE 9191
# exec form: node is PID 1 and gets SIGTERM itself (a graceful drain, exit 0)
ENTRYPOINT ["node", "packages/cli/src/bin.ts"]
CMD ["worker", "packages/examples/src/worker.ts", "--metrics-port", "9191", "--log-format", "json"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9191/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
