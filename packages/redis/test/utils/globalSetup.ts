/**
 * vitest globalSetup of the redis project: starts a private redis-server on a free port (or uses `REDIS_URL`), and
 * provides its URL to the tests as `inject("redisUrl")`.
 */
import type { TestProject } from "vitest/node"
import { hasRedisServer, type RedisServer, startRedisServer } from "./redisServer.ts"

declare module "vitest" {
  export interface ProvidedContext {
    /** The Redis the tests use. */
    readonly redisUrl: string
    /** Whether it is a private server started for this run (tests that reset its statistics need one). */
    readonly redisPrivate: boolean
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const fromEnv = process.env["REDIS_URL"]
  if (fromEnv !== undefined && fromEnv !== "") {
    project.provide("redisUrl", fromEnv)
    project.provide("redisPrivate", false)
    if (!hasRedisServer()) {
      // Never silently: those tests fail (see `describeWithRedisServer`); say why up front, and how to run them.
      console.warn(
        "@errand/redis: REDIS_URL is set and redis-server is not on PATH. The tests that start servers of their own " +
          "(Redis restart, SIGKILLed worker, command and memory costs, Redis Cluster, private-server connection " +
          "tests) fail, saying so. Install redis-server (e.g. `apt-get install redis-server`) to run them."
      )
    }
    return async () => {}
  }
  if (!hasRedisServer()) {
    throw new Error(
      "The @errand/redis tests need a real Redis: install redis-server (e.g. `apt-get install redis-server`) so " +
        "that `redis-server` is on PATH, or set REDIS_URL=redis://host:port to a server the tests may write to."
    )
  }
  const server: RedisServer = await startRedisServer()
  project.provide("redisUrl", server.url)
  project.provide("redisPrivate", true)
  return () => server.dispose()
}
