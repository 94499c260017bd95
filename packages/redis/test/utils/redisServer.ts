/**
 * Starts, stops and restarts a private `redis-server` for the tests: a free port on 127.0.0.1, a temporary directory,
 * and no persistence unless asked for. Never touches a shared server.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connect as tlsConnect } from "node:tls"

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

const ping = (port: number, tls: boolean): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = tls
      ? tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false }, () => socket.write("PING\r\n"))
      : new Socket().connect(port, "127.0.0.1", () => socket.write("PING\r\n"))
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once("error", () => done(false))
    socket.once("data", (data) => done(data.toString().startsWith("+PONG") || data.toString().startsWith("-NOAUTH")))
  })

const waitFor = async (check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`Timed out waiting for ${what}`)
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

/** Starts a private redis-server. */
export const startRedisServer = async (options: RedisServerOptions = {}): Promise<RedisServer> => {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), "errand-redis-"))
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
    const proc = spawn("redis-server", args, { stdio: "ignore" })
    child = proc
    proc.unref()
    await waitFor(() => ping(port, tls !== undefined), `redis-server on port ${port}`)
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
