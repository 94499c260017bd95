/**
 * Starts and stops a private Redis Cluster for the tests: three `redis-server --cluster-enabled yes` masters on free
 * ports of 127.0.0.1 in a temporary directory (no persistence, no replicas unless asked), joined by
 * `redis-cli --cluster create`. Never touches a shared server.
 */
import { type ChildProcess, execFile, execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort, spawnRedisServer, waitFor, withFreshPorts } from "./redisServer.ts"

/** A private Redis Cluster of three masters (and their replicas, if asked). */
export interface RedisCluster {
  /** The ports of its nodes: the three masters first, then the replicas. */
  readonly ports: ReadonlyArray<number>
  /** The URL of its first node (a seed node). */
  readonly url: string
  /** Sends a command with redis-cli to the node on `port` and returns its raw output. */
  readonly cli: (port: number, ...args: ReadonlyArray<string>) => string
  /** Sends a signal to the node on `port` (`SIGSTOP`/`SIGCONT` to pause it, `SIGKILL` to crash it). */
  readonly signal: (port: number, signal: NodeJS.Signals) => void
  /** Stops every node and deletes the directory. */
  readonly dispose: () => Promise<void>
}

const cliAsync = (args: ReadonlyArray<string>): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile(
      "redis-cli",
      args,
      { encoding: "utf8" },
      (error, stdout, stderr) =>
        error === null ? resolve(stdout) : reject(new Error(`redis-cli ${args.join(" ")}: ${stderr || error.message}`))
    )
  )

/** `check`, where a failing command (a node not up yet) counts as "not yet". */
const soft = (check: () => Promise<boolean>) => () => check().catch(() => false)

/** Options of a private Redis Cluster. */
export interface RedisClusterOptions {
  /** A password every node requires (`requirepass`, and `masterauth` for the cluster bus). */
  readonly password?: string
  /** Replicas per master (default 0). */
  readonly replicas?: number
  /**
   * `cluster-node-timeout` in ms (default 15,000, Redis's): how long a node may miss the cluster bus before it is
   * marked failing (and, with replicas, failed over).
   */
  readonly nodeTimeout?: number
  /** An append-only file fsynced every second on every node (default: no persistence). */
  readonly appendOnly?: boolean
  /**
   * `cluster-require-full-coverage` (default true, Redis's): when true, every node refuses commands (CLUSTERDOWN) while
   * some slot is unserved, e.g. between a master's failure and its replica's promotion.
   */
  readonly requireFullCoverage?: boolean
}

/**
 * Starts three cluster-enabled redis-servers, creates the cluster, and waits until every node says it is ok. The whole
 * start is retried on fresh ports (up to three times) when it fails, e.g. because a port was taken meanwhile.
 */
export const startRedisCluster = (options: RedisClusterOptions = {}): Promise<RedisCluster> =>
  withFreshPorts(() => startOnce(options))

const startOnce = async (options: RedisClusterOptions): Promise<RedisCluster> => {
  const auth = options.password === undefined ? [] : ["-a", options.password, "--no-auth-warning"]
  const replicas = options.replicas ?? 0
  const ports: Array<number> = []
  for (let i = 0; i < 3 * (1 + replicas); i++) ports.push(await freePort())
  const dir = mkdtempSync(join(tmpdir(), "errand-cluster-"))
  const children: Array<ChildProcess> = []
  const dispose = async () => {
    await Promise.all(children.map((child) => {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      child.kill("SIGCONT") // a paused node would not see the SIGTERM
      child.kill("SIGTERM")
      return exited
    }))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (const port of ports) {
      children.push(
        await spawnRedisServer([
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          `nodes-${port}.conf`,
          // Redis's default: a node is marked failing when it misses the cluster bus for this long. Shorter values made
          // a loaded machine (a node not scheduled for a few seconds) take the cluster down mid-test.
          "--cluster-node-timeout",
          String(options.nodeTimeout ?? 15_000),
          "--dir",
          dir,
          "--save",
          "",
          "--appendonly",
          options.appendOnly === true ? "yes" : "no",
          "--cluster-require-full-coverage",
          options.requireFullCoverage === false ? "no" : "yes",
          // A replica's first full sync starts at once (Redis waits 5 s by default for more replicas to join)
          "--repl-diskless-sync-delay",
          "0",
          ...(options.password === undefined
            ? []
            : ["--requirepass", options.password, "--masterauth", options.password])
        ], join(dir, `redis-${port}.log`))
      )
    }
    await cliAsync([
      ...auth,
      "--cluster",
      "create",
      ...ports.map((port) => `127.0.0.1:${port}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes"
    ])
    for (const port of ports) {
      await waitFor(
        soft(async () =>
          (await cliAsync([...auth, "-p", String(port), "CLUSTER", "INFO"])).includes("cluster_state:ok")
        ),
        `cluster_state:ok on node ${port}`
      )
    }
    // A replica that has not synced with its master yet cannot take over from it
    for (const port of ports.slice(3)) {
      await waitFor(
        soft(async () =>
          (await cliAsync([...auth, "-p", String(port), "INFO", "replication"])).includes("master_link_status:up")
        ),
        `replica ${port} in sync`
      )
    }
  } catch (error) {
    await dispose()
    throw error
  }
  return {
    ports,
    url: `redis://127.0.0.1:${ports[0]}`,
    cli: (port, ...args) => execFileSync("redis-cli", [...auth, "-p", String(port), ...args], { encoding: "utf8" }),
    signal: (port, signal) => {
      children[ports.indexOf(port)]?.kill(signal)
    },
    dispose
  }
}
