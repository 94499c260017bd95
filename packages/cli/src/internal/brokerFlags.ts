/**
 * The flags every command shares to choose its broker, and the broker Layer they describe.
 *
 * @internal
 */
import { Broker, Results } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { RedisBroker } from "@errand/redis"
import { Config, Context, Effect, Layer, Option, type Redacted } from "effect"
import { Flag } from "effect/cli"
import { BrokerUnavailable } from "../CommandError.ts"

/** A flag description that names its default and the environment variable it falls back to. */
export const describe = (text: string, details: { readonly default?: string; readonly env?: string } = {}) => {
  const extra = [
    details.default === undefined ? undefined : `default: ${details.default}`,
    details.env === undefined ? undefined : `env: ${details.env}`
  ].filter((part) => part !== undefined)
  return extra.length === 0 ? text : `${text} (${extra.join("; ")})`
}

/** The broker flags, to spread into a command's flags. */
export const brokerFlags = {
  broker: Flag.Literals("broker", ["redis", "memory"]).pipe(
    Flag.withDescription(describe("The broker: redis, or memory (one process only, nothing shared)", {
      default: "redis"
    })),
    Flag.withDefault("redis" as const)
  ),
  redisUrl: Flag.Redacted("redis-url").pipe(
    Flag.withDescription(describe("The Redis URL, redis://[user:password@]host[:port][/db] or rediss://", {
      env: "REDIS_URL"
    })),
    Flag.withFallbackConfig(Config.Redacted("REDIS_URL")),
    Flag.optional
  ),
  redisPrefix: Flag.String("redis-prefix").pipe(
    Flag.withDescription(describe("The first part of every Redis key's hash tag", {
      default: "errand",
      env: "ERRAND_REDIS_PREFIX"
    })),
    Flag.withFallbackConfig(Config.String("ERRAND_REDIS_PREFIX")),
    Flag.withDefault("errand")
  ),
  redisCluster: Flag.Boolean("redis-cluster").pipe(
    Flag.withDescription(describe("Connect to a Redis Cluster (--redis-url names one node)", { default: "false" })),
    Flag.withDefault(false)
  )
}

/** The values of the broker flags. */
export interface BrokerChoice {
  readonly broker: "redis" | "memory"
  readonly redisUrl: Option.Option<Redacted.Redacted<string>>
  readonly redisPrefix: string
  readonly redisCluster: boolean
}

/**
 * The broker Layer the flags describe, with its `Results` store (for actors with `storeResults`). Fails with
 * `BrokerUnavailable` (exit 4).
 */
export const brokerLayer = (
  choice: BrokerChoice
): Layer.Layer<Broker.Broker | Results.Results, BrokerUnavailable> => {
  if (choice.broker === "memory") return MemoryBroker.layer
  const url = choice.redisUrl
  return Layer.effectContext(
    Option.isNone(url)
      ? Effect.fail(
        new BrokerUnavailable({
          broker: "redis",
          problem: "no Redis URL: set REDIS_URL or pass --redis-url (or --broker memory for a single process)"
        })
      )
      : RedisBroker.makeWithResults({ url: url.value, prefix: choice.redisPrefix, cluster: choice.redisCluster }).pipe(
        Effect.mapError((error) => new BrokerUnavailable({ broker: "redis", problem: error.message })),
        Effect.map(({ broker, results }) =>
          Context.make(Broker.Broker, broker).pipe(Context.add(Results.Results, results))
        )
      )
  )
}
