/**
 * A private, throw-away `redis-server` on a free port: no persistence, its own temp dir, killed on exit.
 */
import { Redis } from "ioredis"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { sleep } from "./clock.ts"

export interface PrivateRedis {
  readonly host: string
  readonly port: number
  readonly version: string
  /** A client for the harness's own commands (FLUSHALL between runs). */
  readonly admin: Redis
  readonly stop: () => Promise<void>
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() =>
        typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))
      )
    })
  })

export const startRedis = async (): Promise<PrivateRedis> => {
  const host = "127.0.0.1"
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), "errand-bench-redis-"))
  const args = ["--port", String(port), "--bind", host, "--save", "", "--appendonly", "no", "--dir", dir]
  let output = ""
  const server: ChildProcess = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] })
  server.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  server.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  let spawnError: Error | undefined
  server.once("error", (error) => (spawnError = error)) // ENOENT: no redis-server on PATH
  const exited = new Promise<void>((resolve) => {
    server.once("exit", () => resolve())
    server.once("error", () => resolve())
  })
  const kill = () => {
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL")
  }
  process.once("exit", kill)
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      kill()
      rmSync(dir, { recursive: true, force: true })
      process.exit(130)
    })
  }
  const cleanup = async () => {
    kill()
    await exited
    rmSync(dir, { recursive: true, force: true })
  }
  const admin = new Redis({ host, port, lazyConnect: true, retryStrategy: () => null })
  admin.on("error", () => {})
  for (let attempt = 0;; attempt++) {
    if (spawnError !== undefined) {
      await cleanup()
      throw new Error(`could not start redis-server (is it on PATH?): ${spawnError.message}`)
    }
    if (server.exitCode !== null) {
      await cleanup()
      throw new Error(`redis-server exited with ${server.exitCode}:\n${output}`)
    }
    // Its own log says it listens (a connection alone could reach another process's server that took the port)
    if (!output.includes("Ready to accept connections")) {
      if (attempt >= 600) {
        await cleanup()
        throw new Error(`redis-server did not start within 30 s on ${host}:${port}:\n${output}`)
      }
      await sleep(50)
      continue
    }
    try {
      await admin.connect()
      break
    } catch (error) {
      if (attempt >= 600) {
        await cleanup()
        throw new Error(`redis-server did not accept connections on ${host}:${port}: ${String(error)}\n${output}`)
      }
      await sleep(50)
    }
  }
  const version = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "?"
  return {
    host,
    port,
    version,
    admin,
    stop: async () => {
      admin.disconnect()
      await cleanup()
    }
  }
}
