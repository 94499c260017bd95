/**
 * Starts, stops and restarts a private `redis-server` for the tests: a free port on 127.0.0.1, a temporary directory,
 * and no persistence unless asked for. Never touches a shared server.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** A private redis-server process. */
export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  /** Sends a command with redis-cli and returns its raw output. */
  readonly cli: (...args: ReadonlyArray<string>) => string
  /** Stops the server (SIGTERM, so an append-only file is flushed), keeping its directory. */
  readonly stop: () => Promise<void>
  /** Starts the server again on the same port and directory. */
  readonly start: () => Promise<void>
  /** Stops the server and deletes its directory. */
  readonly dispose: () => Promise<void>
}

/** Whether `redis-server` is on PATH. */
export const hasRedisServer = (): boolean => {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** A free TCP port on 127.0.0.1. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const ping = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = new Socket()
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once("error", () => done(false))
    socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"))
    socket.once("data", (data) => done(data.toString().startsWith("+PONG")))
  })

const waitFor = async (check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`Timed out waiting for ${what}`)
}

/** Starts a private redis-server. With `persistence`, it uses an append-only file fsynced on every write. */
export const startRedisServer = async (options: { readonly persistence?: boolean } = {}): Promise<RedisServer> => {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), "errand-redis-"))
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--dir",
    dir,
    ...(options.persistence === true
      ? ["--appendonly", "yes", "--appendfsync", "always"]
      : ["--appendonly", "no"])
  ]
  let child: ChildProcess | undefined
  const start = async () => {
    const proc = spawn("redis-server", args, { stdio: "ignore" })
    child = proc
    proc.unref()
    await waitFor(() => ping(port), `redis-server on port ${port}`)
  }
  const stop = async () => {
    const proc = child
    child = undefined
    if (proc === undefined || proc.exitCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()))
    proc.kill("SIGTERM")
    await exited
  }
  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    cli: (...cliArgs) => execFileSync("redis-cli", ["-p", String(port), ...cliArgs], { encoding: "utf8" }),
    stop,
    start,
    dispose: async () => {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
