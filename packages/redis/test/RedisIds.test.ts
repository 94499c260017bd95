/**
 * One id grammar for the scripts and the codec (`Message.isMessageId`): the Lua pattern accepts exactly the
 * characters core accepts; any valid id and any JSON body round-trip through enqueue → take → retry → take → ack on a
 * real Redis; ids outside the grammar are refused at enqueue; and an element written by another producer with an id
 * outside the grammar (a backslash) runs once, under its lease token as id, instead of twice.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Broker, Message } from "@errand/core"
import { RedisBroker } from "@errand/redis"
import { Arbitrary, Effect, Schema } from "effect"
import * as Scripts from "../src/internal/scripts.ts"
import { ack, rawClient, redisUrl, uniquePrefix } from "./utils/testing.ts"

const prefix = uniquePrefix()
const BrokerLive = RedisBroker.layer({ url: redisUrl, prefix })

/** Any JSON value; or an Errand-like envelope whose first field is the id (stored in the compact form). */
const Body = Schema.Union([
  Schema.Json,
  Schema.Struct({ payload: Schema.Json }),
  Schema.Struct({ label: Schema.String, payload: Schema.Json })
])

/** A string outside the grammar. */
const invalidId = Arbitrary.schema(Schema.String).pipe(Arbitrary.filter((s) => !Message.isMessageId(s)))

const wire = (value: unknown): unknown => JSON.parse(JSON.stringify(value))

/** Property runs that reached the end (checked after the property: it did run). */
let runs = 0

layer(BrokerLive, { excludeTestServices: true })("Redis message ids", (it) => {
  it.effect("the scripts' id pattern accepts exactly the characters of Message.isMessageId", () =>
    Effect.gen(function*() {
      const redis = yield* rawClient()
      const lua = `return string.find(ARGV[1], '^${Scripts.luaIdClass}+$') ~= nil and 1 or 0`
      for (let byte = 0; byte < 256; byte++) {
        const inLua = (yield* Effect.promise(() => redis.eval(lua, 0, Buffer.from([byte])))) === 1
        assert.strictEqual(inLua, Message.isMessageId(String.fromCharCode(byte)), `byte ${byte}`)
      }
    }))

  it.effect.prop(
    "any valid id with any JSON body round-trips through enqueue, take, retry, take and ack",
    { id: Message.MessageId, body: Body, priority: Schema.Literals([0, 0, -1, 5]), envelope: Schema.Boolean },
    ({ body, envelope, id, priority }) =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const queue = `prop-${uniquePrefix()}`
        // An envelope-like body names its id first: Redis then stores the compact form, read by the scripts' pattern
        const sent = envelope && typeof body === "object" && body !== null && !Array.isArray(body)
          ? { id, ...body }
          : body
        yield* broker.enqueue([{ id, queue, priority, eta: 0, body: sent }])
        const first = yield* broker.take({ queue, max: 10, lease: "1 minute" })
        assert.deepStrictEqual(first.deliveries.map((d) => [d.id, d.body]), [[id, wire(sent)]])
        const second = yield* broker.take({
          queue,
          max: 10,
          lease: "1 minute",
          settle: [{ _tag: "Retry", delivery: first.deliveries[0]!, eta: 0, error: { tag: "Boom", message: id } }]
        })
        assert.deepStrictEqual(second.rejected, [])
        assert.deepStrictEqual(second.deliveries.map((d) => [d.id, d.body, d.attempts]), [[id, wire(sent), 1]])
        assert.deepStrictEqual(yield* broker.settle(second.deliveries.map(ack)), [])
        assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
        runs++
        yield* broker.flush(queue)
      }),
    { timeout: 60_000, arbitrary: { runs: 300 } }
  )

  it("ran the round-trip property 300 times", () => {
    assert.isAtLeast(runs, 300)
  })

  it.effect.prop(
    "an id outside the grammar is refused at enqueue, and nothing is stored",
    { id: invalidId },
    ({ id }) =>
      Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const queue = `prop-${uniquePrefix()}`
        const error = yield* Effect.flip(broker.enqueue([{ id, queue, priority: 0, eta: 0, body: { id } }]))
        assert.strictEqual(error.operation, "enqueue")
        assert.strictEqual((error.cause as { readonly _tag?: string })._tag, "InvalidMessageId")
        assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
      }),
    { timeout: 60_000, arbitrary: { runs: 200 } }
  )

  describe("elements written by another producer", () => {
    const written = [
      // compact, its id holding a backslash: the take script used to read `a\\b` and the codec `a`
      ["a compact element whose id holds a backslash", "{\"id\":\"a\\\\b\",\"n\":1}"],
      ["a compact element whose id holds a tab", "{\"id\":\"a\tb\",\"n\":1}"],
      ["a compact element whose id is empty", "{\"id\":\"\",\"n\":1}"],
      ["a headed element whose id holds a backslash", "#[0,0,0,\"a\\\\b\"]\n{\"n\":1}"],
      ["a headed element whose id is not a string", "#[0,0,0,7]\n{\"n\":1}"]
    ] as const
    for (const [what, element] of written) {
      it.effect(`${what} runs once, under its lease token as id`, () =>
        Effect.gen(function*() {
          const broker = yield* Broker.Broker
          const redis = yield* rawClient()
          const queue = `raw-${uniquePrefix()}`
          yield* Effect.promise(() => redis.rpush(`{${prefix}:${queue}}:r`, element))
          const taken = yield* broker.take({ queue, max: 10, lease: "1 minute" })
          assert.strictEqual(taken.deliveries.length, 1)
          const delivery = taken.deliveries[0]!
          assert.strictEqual(delivery.id, delivery.lease)
          assert.deepStrictEqual(yield* broker.settle([ack(delivery)]), [])
          assert.deepStrictEqual(yield* broker.stats(queue), { ready: 0, delayed: 0, inFlight: 0, dead: 0 })
        }))
    }
  })
})
