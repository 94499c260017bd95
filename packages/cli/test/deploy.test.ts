/**
 * The deployment files (the image cannot be built here: no container registry): the Dockerfile's command run as the
 * image would run it, against a private redis-server; docker-compose.yml parsed and checked against the code (the
 * environment variables it sets are the ones the code reads, the grace period covers the drain, health checks hit
 * `/readyz` on the metrics port).
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parse } from "yaml"
import { redisUrl, start } from "./utils/cli.ts"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8")
const compose = parse(readFileSync(join(root, "docker-compose.yml"), "utf8")) as {
  readonly services: Record<string, {
    readonly command?: ReadonlyArray<string>
    readonly entrypoint?: ReadonlyArray<string>
    readonly environment?: Record<string, string>
    readonly stop_grace_period?: string
    readonly ports?: ReadonlyArray<string>
    readonly healthcheck?: { readonly test: ReadonlyArray<string> }
  }>
}

/** The JSON array of a Dockerfile instruction (exec form), e.g. `CMD`. */
const execForm = (instruction: string): Array<string> => {
  const line = dockerfile.split("\n").find((l) => l.startsWith(`${instruction} [`))
  assert(line !== undefined, `${instruction} in exec form`)
  return JSON.parse(line.slice(instruction.length + 1)) as Array<string>
}

/** The environment variables the packages' sources read (`Config.X("NAME")`, `process.env["NAME"]`). */
const readEnvironment = (): Set<string> => {
  const names = new Set<string>()
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry)
      if (statSync(path).isDirectory()) walk(path)
      else if (path.endsWith(".ts")) {
        const text = readFileSync(path, "utf8")
        for (const match of text.matchAll(/Config\.\w+\("([A-Z_]+)"\)|process\.env\["([A-Z_]+)"\]/g)) {
          names.add(match[1] ?? match[2]!)
        }
      }
    }
  }
  for (const pkg of readdirSync(join(root, "packages"))) walk(join(root, "packages", pkg, "src"))
  return names
}

const seconds = (duration: string): number => {
  const match = /^(\d+)(s|m)$/.exec(duration)
  assert(match !== null, `a duration like 45s: ${duration}`)
  return Number(match[1]) * (match[2] === "m" ? 60 : 1)
}

describe("Dockerfile", () => {
  it("is multi-stage on a node base and runs as the non-root node user", () => {
    const stages = dockerfile.split("\n").filter((line) => line.startsWith("FROM "))
    assert.isAtLeast(stages.length, 2)
    for (const stage of stages) assert.match(stage, /^FROM node:22/)
    assert.include(dockerfile.split("\n"), "USER node")
  })

  it("its command runs a worker (errand worker) that serves /readyz, and stops with exit 0 on SIGTERM", async () => {
    // the image's ENTRYPOINT + CMD from the repository root (the image's /app), on an ephemeral port of 127.0.0.1
    const [node, ...entrypoint] = execForm("ENTRYPOINT")
    const command = execForm("CMD")
    assert.strictEqual(node, "node")
    assert.strictEqual(command[0], "worker")
    const port = command.indexOf("--metrics-port")
    assert.strictEqual(command[port + 1], "9191")
    const args = [...command.slice(0, port + 1), "0", ...command.slice(port + 2), "--metrics-host", "127.0.0.1"]
    const worker = start(join(root, entrypoint[0]!), args, {
      REDIS_URL: redisUrl,
      ERRAND_REDIS_PREFIX: `deploy-${process.pid}`
    })
    try {
      await worker.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+/)
      await worker.waitFor(/Worker started on email, orders, exports, maintenance/)
      const base = worker.output().match(/Listening on (http:\/\/127\.0\.0\.1:\d+)/)![1]!
      // the image's HEALTHCHECK command, on this port
      const healthcheck = dockerfile.match(/HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])/)
      assert(healthcheck !== null)
      const [, , script] = JSON.parse(healthcheck[1]!) as Array<string>
      const code = await new Promise<number | null>((resolve) => {
        const check = spawn(process.execPath, ["-e", script!.replace("http://127.0.0.1:9191", base)])
        check.once("exit", resolve)
      })
      assert.strictEqual(code, 0, worker.output())
    } finally {
      worker.child.kill("SIGTERM")
    }
    assert.deepStrictEqual(await worker.exited, { code: 0, signal: null })
  })
})

describe("docker-compose.yml", () => {
  it("runs postgres, redis, a worker, the web API and a producer; sets only environment variables the code reads", () => {
    assert.deepStrictEqual(Object.keys(compose.services).sort(), ["postgres", "producer", "redis", "web", "worker"])
    const read = readEnvironment()
    for (const name of ["worker", "web", "producer"]) {
      for (const variable of Object.keys(compose.services[name]!.environment ?? {})) {
        assert(read.has(variable), `${name} sets ${variable}, which no source reads`)
      }
    }
    assert.deepStrictEqual(compose.services["producer"]!.entrypoint, ["node", "packages/examples/src/enqueue.ts"])
    assert.deepStrictEqual(compose.services["web"]!.entrypoint, ["node", "packages/examples/src/web.ts"])
  })

  it("gives the worker a grace period above its drain, health checks on /readyz, one port per process", () => {
    const worker = compose.services["worker"]!
    const command = worker.command!
    assert.strictEqual(command[0], "worker")
    const flag = (name: string) => command[command.indexOf(name) + 1]!
    // a stop lets handlers finish for --shutdown-timeout, then takes up to the release timeout (5 s) more
    assert.isAtLeast(seconds(worker.stop_grace_period!), seconds(flag("--shutdown-timeout")) + 5)
    const base = Number(worker.environment!["ERRAND_METRICS_PORT"])
    const processes = Number(flag("--processes"))
    assert.deepStrictEqual(worker.ports, [`${base}-${base + processes - 1}:${base}-${base + processes - 1}`])
    assert.include(worker.healthcheck!.test.join(" "), `http://127.0.0.1:${base}/readyz`)
  })
})
