/**
 * Starts, stops and restarts a private `redis-server` for the tests: a free port on 127.0.0.1, a temporary directory,
 * and no persistence unless asked for. Never touches a shared server.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
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
  /** Kills the server (SIGKILL: a crash; with `persistence`, every acknowledged write is in its fsynced file). */
  readonly kill: () => Promise<void>
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

/**
 * Waits until `check` holds, or throws. The default bound is generous: redis-server starts in milliseconds, but a loaded
 * 2-core machine may not schedule it for seconds.
 */
export const waitFor = async (check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** A redis-server that exited before it was ready, with the end of its log (a taken port shows there). */
class ServerExited extends Error {}

/**
 * Spawns `redis-server` with `args` and waits until it says, in its own log file, that it accepts connections: a
 * PONG on the port could come from another process's server that took the port first (tests of other runs start
 * servers too). Fails with `ServerExited` when the process exits first.
 */
export const spawnRedisServer = async (args: ReadonlyArray<string>, logFile: string): Promise<ChildProcess> => {
  rmSync(logFile, { force: true })
  const child = spawn("redis-server", [...args, "--logfile", logFile], { stdio: "ignore" })
  child.unref()
  let exited = false
  child.once("exit", () => (exited = true))
  const log = () => existsSync(logFile) ? readFileSync(logFile, "utf8") : ""
  try {
    await waitFor(async () => {
      if (exited) {
        throw new ServerExited(`redis-server exited at start: ${log().trim().split("\n").slice(-3).join(" | ")}`)
      }
      return log().includes("Ready to accept connections")
    }, `redis-server ${args.join(" ")} to accept connections`)
  } catch (error) {
    child.kill("SIGKILL")
    throw error
  }
  return child
}

/**
 * Runs `start` with fresh free ports until it succeeds, up to `attempts` times: a port found free may be taken by
 * another process before the server binds it. Only the server start is retried, never a test's assertion.
 */
export const withFreshPorts = async <A>(start: () => Promise<A>, attempts = 3): Promise<A> => {
  for (let attempt = 1;; attempt++) {
    try {
      return await start()
    } catch (error) {
      if (attempt >= attempts) throw error
      process.stderr.write(`[redis test server] start attempt ${attempt} failed, retrying: ${String(error)}\n`)
    }
  }
}

/** Options of a private redis-server. */
export interface RedisServerOptions {
  /** Use an append-only file fsynced on every write (for restart tests). */
  readonly persistence?: boolean
  /** Serve TLS only, with this certificate (PEM files); clients are not asked for certificates. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string }
  /** More `redis-server` arguments, e.g. `["--requirepass", "secret"]`. */
  readonly args?: ReadonlyArray<string>
}

/** Starts a private redis-server (on fresh ports up to three times when its port is taken meanwhile). */
export const startRedisServer = (options: RedisServerOptions = {}): Promise<RedisServer> =>
  withFreshPorts(async () => {
    const port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), "errand-redis-"))
    try {
      return await startOn(port, dir, options)
    } catch (error) {
      rmSync(dir, { recursive: true, force: true })
      throw error
    }
  })

const startOn = async (port: number, dir: string, options: RedisServerOptions): Promise<RedisServer> => {
  const tls = options.tls
  const args = [
    ...(tls === undefined ? ["--port", String(port)] : [
      "--port",
      "0",
      "--tls-port",
      String(port),
      "--tls-cert-file",
      tls.cert,
      "--tls-key-file",
      tls.key,
      "--tls-ca-cert-file",
      tls.ca,
      "--tls-auth-clients",
      "no"
    ]),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--dir",
    dir,
    ...(options.persistence === true
      ? ["--appendonly", "yes", "--appendfsync", "always"]
      : ["--appendonly", "no"]),
    ...(options.args ?? [])
  ]
  let child: ChildProcess | undefined
  const start = async () => {
    child = await spawnRedisServer(args, join(dir, "redis.log"))
  }
  const end = async (signal: NodeJS.Signals) => {
    const proc = child
    child = undefined
    if (proc === undefined || proc.exitCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()))
    proc.kill(signal)
    await exited
  }
  const stop = () => end("SIGTERM")
  await start()
  return {
    port,
    url: tls === undefined ? `redis://127.0.0.1:${port}` : `rediss://localhost:${port}`,
    dir,
    cli: (...cliArgs) =>
      execFileSync(
        "redis-cli",
        [...(tls === undefined ? [] : ["--tls", "--insecure"]), "-p", String(port), ...cliArgs],
        {
          encoding: "utf8"
        }
      ),
    stop,
    kill: () => end("SIGKILL"),
    start,
    dispose: async () => {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** Writes a self-signed certificate for `localhost` (with openssl) into a new temporary directory. */
export const selfSignedCertificate = (): { readonly cert: string; readonly key: string; readonly ca: string } => {
  const dir = mkdtempSync(join(tmpdir(), "errand-tls-"))
  const cert = join(dir, "cert.pem")
  const key = join(dir, "key.pem")
  execFileSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1"
  ], { stdio: "ignore" })
  return { cert, key, ca: cert }
}

/** Whether openssl is on PATH. */
export const hasOpenssl = (): boolean => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** How many clients of a server are blocked in `command`, by `CLIENT LIST` (sent through `cli`). */
export const blockedClients = (cli: (...args: ReadonlyArray<string>) => string, command = "bzpopmin"): number =>
  cli("CLIENT", "LIST").split("\n").filter((line) =>
    line.includes(` cmd=${command} `) && /\bflags=[A-Za-z]*b/.test(line)
  ).length

/**
 * Waits until `count` clients of a server are blocked in `command`: the event a test of blocking takes waits for,
 * instead of sleeping and hoping the take is blocked by then.
 */
export const untilBlocked = (
  cli: (...args: ReadonlyArray<string>) => string,
  count = 1,
  command = "bzpopmin"
): Promise<void> =>
  waitFor(async () => blockedClients(cli, command) >= count, `${count} client(s) blocked in ${command}`)
