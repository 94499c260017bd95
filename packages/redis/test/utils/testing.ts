/**
 * Shared helpers of the redis tests: the injected Redis URL, unique key prefixes, brokers and raw clients.
 */
import { describe, it } from "@effect/vitest"
import type { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { randomUUID } from "node:crypto"
import { inject } from "vitest"
import { hasOpenssl, hasRedisServer } from "./redisServer.ts"

/** The Redis the tests use (a private redis-server, or REDIS_URL). */
export const redisUrl: string = inject("redisUrl")

/** Whether `redisUrl` is a private server of this run. */
export const redisPrivate: boolean = inject("redisPrivate")

/** A key prefix no other test uses. */
export const uniquePrefix = (): string => `t-${randomUUID().slice(0, 12)}`

/** A Redis broker layer on its own prefix. */
export const brokerLayer = (options: Partial<RedisBroker.RedisBrokerOptions> = {}) =>
  RedisBroker.layer({ url: redisUrl, prefix: uniquePrefix(), ...options })

/** A raw ioredis client, closed with the scope. */
export const rawClient = (url: string = redisUrl) =>
  Effect.acquireRelease(
    Effect.sync(() => new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false })),
    (client) => Effect.promise(() => client.quit().catch(() => "")).pipe(Effect.asVoid)
  )

let counter = 0

/** An outgoing message with an Errand-like envelope body (`id` first, about 100 bytes of JSON). */
export const message = (
  queue: string,
  fields: { readonly id?: string; readonly priority?: number; readonly eta?: number; readonly payload?: unknown } = {}
): Broker.Outgoing => {
  const id = fields.id ?? `m${(counter++).toString(36)}-${randomUUID().slice(0, 8)}`
  return {
    id,
    queue,
    priority: fields.priority ?? 0,
    eta: fields.eta ?? 0,
    body: { id, actor: "noop", queue, payload: fields.payload ?? { n: 1 }, enqueuedAt: 1764079200000 }
  }
}

/** The lease of a delivery used in a settlement. */
export const ack = (delivery: Broker.Delivery): Broker.Settlement => ({ _tag: "Ack", delivery })

const missingRedisServer = "this test starts redis-servers of its own and needs `redis-server` on PATH " +
  "(Debian/Ubuntu: apt-get install redis-server); REDIS_URL alone cannot serve it"

/** A test that fails saying what is missing: a test that cannot run never passes as skipped. */
const missing = (what: string) => () => {
  throw new Error(what)
}

/**
 * `describe` for tests that start redis-servers of their own: without `redis-server` on PATH (a run against
 * `REDIS_URL` only) the block is one failing test that says how to get it, never a silent skip.
 */
export const describeWithRedisServer = (name: string, body: () => void): void => {
  if (hasRedisServer()) describe(name, body)
  else describe(name, () => it("needs redis-server on PATH", missing(missingRedisServer)))
}

/** `it.live` for a test that starts redis-servers of its own (see `describeWithRedisServer`). */
export const liveWithRedisServer: typeof it.live = hasRedisServer()
  ? it.live
  : ((name: string) => it(name, missing(missingRedisServer))) as unknown as typeof it.live

/** `it.live` for a test that needs `openssl` on PATH (TLS certificates): without it, it fails saying so. */
export const liveWithOpenssl: typeof it.live = hasOpenssl()
  ? it.live
  : ((name: string) =>
    it(name, missing("this test needs `openssl` on PATH (apt-get install openssl)"))) as unknown as typeof it.live
