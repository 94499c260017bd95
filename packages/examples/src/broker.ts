/**
 * Which broker the examples run on: Redis when `REDIS_URL` is set, else the in-memory broker. Nothing else in the
 * examples changes between the two.
 */
import type { Broker, Results } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { RedisBroker } from "@errand/redis"
import { Layer } from "effect"

/** The broker chosen by the environment (with its results store), and its name for printing. */
export const brokerFromEnv = (): {
  readonly name: string
  readonly layer: Layer.Layer<Broker.Broker | Results.Results, unknown>
} => {
  const url = process.env["REDIS_URL"]
  return url !== undefined && url !== ""
    ? { name: "redis", layer: RedisBroker.layerConfig() }
    : { name: "memory", layer: MemoryBroker.layer }
}
