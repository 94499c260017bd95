/**
 * The core worker on the memory broker, where the two meet: how fast a message reaches its handler.
 */
import { assert, describe, it } from "@effect/vitest"
import { Actor, Worker } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { Effect, Layer, Schema } from "effect"

const ping = Actor.make("ping", { queue: "handoff", payload: Schema.Struct({ n: Schema.Number }) })

describe("a worker on the memory broker", () => {
  it.effect("starts the handler of a message sent while it waits within the send, every time", () =>
    Effect.gen(function*() {
      const started: Array<number> = []
      yield* Layer.build(
        Worker.layer({ handlers: [ping.handle(({ n }) => Effect.sync(() => started.push(n)))], concurrency: 4 })
      )
      // the first message brings the worker's take loop to its waiting take (`join` may resume inside that take,
      // before it waits: one scheduler turn lets it get there)
      yield* ping.send({ n: 0 })
      yield* MemoryBroker.join("handoff")
      yield* Effect.yieldNow
      for (let n = 1; n <= 20; n++) {
        yield* ping.send({ n })
        // no scheduler turn in between: the waiting take was handed the message, and it handed it to a runner
        assert.strictEqual(started.length, n + 1, `message ${n} had not started when its send returned`)
      }
      yield* MemoryBroker.join("handoff")
      assert.deepStrictEqual(started, Array.from({ length: 21 }, (_, n) => n))
    }).pipe(Effect.scoped, Effect.provide(MemoryBroker.layer)))
})
