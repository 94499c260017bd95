/**
 * Shared helpers of the redis tests: the injected Redis URL, unique key prefixes, brokers and raw clients.
 */
import type { Broker } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { randomUUID } from "node:crypto"
import { inject } from "vitest"

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
