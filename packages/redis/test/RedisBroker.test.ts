import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@errand/core"
import { BrokerConformance, ResultsConformance } from "@errand/core/testing"
import { Clock, Effect } from "effect"
import { brokerLayer } from "./utils/testing.ts"

BrokerConformance.suite("redis", brokerLayer())
ResultsConformance.suite("redis", brokerLayer())

describe("redis heartbeats", () => {
  it.effect("refuses a report it cannot store as JSON with a BrokerError, and stores nothing", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const now = yield* Clock.currentTimeMillis
      const cyclic: Record<string, unknown> = {}
      cyclic["self"] = cyclic
      for (const report of [{ n: 1n }, cyclic, undefined]) {
        const error = yield* Effect.flip(broker.heartbeat({ id: "w-1", expiresAt: now + 5_000, report }))
        assert.deepInclude(error, { _tag: "BrokerError", operation: "heartbeat", applied: "no" })
      }
      assert.deepStrictEqual(yield* broker.heartbeats, [])
    }).pipe(Effect.provide(brokerLayer())))
})
