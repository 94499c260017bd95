import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Effect, Exit, Layer, Ref, Schema } from "effect"
import { Actor, Broker, Worker } from "../src/index.ts"
import * as Payload from "../src/internal/payload.ts"

/** What the worker runs: the compiled decoder when there is one, and the Schema decode when it does not decide. */
const decoders = (schema: Schema.Top) => {
  const codec = Schema.toCodecJson(schema)
  return { fast: Payload.compile(codec.ast), schema: Schema.decodeUnknownExit(codec as never) }
}

const label = (input: unknown) => {
  try {
    return JSON.stringify(input) ?? String(input)
  } catch {
    return String(input)
  }
}

/** The compiled decoder either returns exactly what the Schema returns (a new object), or leaves it to the Schema. */
const agrees = (schema: Schema.Top, inputs: ReadonlyArray<unknown>) => {
  const decided = agreesOnDecode(schema, inputs)
  assert.strictEqual(encodesAlike(schema, inputs), decided, "encoding accepts what decoding accepts")
  return decided
}

/** The same for encoding, which `send` runs with the same compiled function. */
const encodesAlike = (schema: Schema.Top, inputs: ReadonlyArray<unknown>) => {
  const codec = Schema.toCodecJson(schema)
  const fast = Payload.compile(codec.ast)!
  const encode = Schema.encodeUnknownExit(codec as never)
  let decided = 0
  for (const input of inputs) {
    const out = fast(input)
    if (out === Payload.invalid) continue
    decided++
    const exit = encode(input)
    assert.isTrue(
      Exit.isSuccess(exit),
      `the Schema does not encode what the compiled function accepted: ${label(input)}`
    )
    if (Exit.isSuccess(exit)) {
      assert.deepStrictEqual(out, exit.value, label(input))
      assert.deepStrictEqual(Object.keys(out as object), Object.keys(exit.value as object), label(input))
    }
  }
  return decided
}

const agreesOnDecode = (schema: Schema.Top, inputs: ReadonlyArray<unknown>) => {
  const { fast, schema: decode } = decoders(schema)
  assert.isDefined(fast, "compiled")
  let decided = 0
  for (const input of inputs) {
    const out = fast!(input)
    const exit = decode(input)
    if (out === Payload.invalid) continue
    decided++
    assert.isTrue(Exit.isSuccess(exit), `the Schema rejects what the compiled decoder accepted: ${label(input)}`)
    if (Exit.isSuccess(exit)) {
      assert.deepStrictEqual(out, exit.value, label(input))
      assert.deepStrictEqual(Object.keys(out as object), Object.keys(exit.value as object), label(input))
      if (typeof input === "object" && input !== null) assert.notStrictEqual(out, input, "a new object")
    }
  }
  return decided
}

const Job = Schema.Struct({ i: Schema.Number, t: Schema.Number })

const proto = { i: 1, t: 2 }

const jobInputs: ReadonlyArray<unknown> = [
  { i: 1, t: 2 },
  { i: -0, t: 1.5e300 },
  { t: 2, i: 1 },
  { i: 1, t: 2, extra: "dropped" },
  { i: "1", t: 2 },
  { i: 1 },
  { i: 1, t: undefined },
  { i: Number.NaN, t: 1 },
  { i: Infinity, t: 1 },
  { i: "NaN", t: 1 },
  { i: "Infinity", t: "-Infinity" },
  { i: null, t: 1 },
  Object.create(proto),
  Object.assign(Object.create(proto), { i: 3 }),
  [],
  [1, 2],
  null,
  undefined,
  "x",
  42
]

describe("compiled payload decoder (and encoder)", () => {
  it("decodes the bench's struct of numbers exactly like the Schema, and leaves every invalid input to it", () => {
    const decided = agrees(Job, jobInputs)
    // the valid inputs with finite numbers (own or inherited keys) are decided without the Schema
    assert.strictEqual(decided, 6)
    const { fast, schema } = decoders(Job)
    for (const input of jobInputs) {
      if (Exit.isFailure(schema(input))) assert.strictEqual(fast!(input), Payload.invalid, label(input))
    }
  })

  it("covers strings, booleans, null, literals, optional keys and nested structs", () => {
    const Order = Schema.Struct({
      id: Schema.String,
      paid: Schema.Boolean,
      note: Schema.Null,
      kind: Schema.Literal("order"),
      tag: Schema.optionalKey(Schema.String),
      line: Schema.Struct({ sku: Schema.String, qty: Schema.Number }),
      extra: Schema.optionalKey(Schema.Struct({ gift: Schema.Boolean })),
      "a key": Schema.optionalKey(Schema.Literal(1)),
      "\"quoted\"\n": Schema.optionalKey(Schema.Null),
      "0": Schema.optionalKey(Schema.String),
      last: Schema.optionalKey(Schema.Boolean)
    })
    const valid = { id: "o1", paid: true, note: null, kind: "order", line: { sku: "s", qty: 2 } }
    const decided = agrees(Order, [
      valid,
      { ...valid, tag: "t" },
      { ...valid, tag: undefined },
      { ...valid, tag: 1 },
      { ...valid, extra: { gift: false, more: 1 } },
      { ...valid, extra: undefined },
      { ...valid, extra: {} },
      { ...valid, kind: "other" },
      { ...valid, note: undefined },
      { ...valid, paid: "yes" },
      { ...valid, line: { sku: "s" } },
      { ...valid, line: null },
      { ...valid, line: [] },
      { ...valid, "a key": 1, "\"quoted\"\n": null, "0": "zero", last: true },
      { last: false, "0": "zero", ...valid, "a key": 1 },
      { ...valid, "a key": 2 },
      { ...valid, "0": 0 }
    ])
    assert.strictEqual(decided, 5)
  })

  it("compiles nothing with checks, transformations, declarations, unions, arrays, records or defaults", () => {
    const general: ReadonlyArray<Schema.Top> = [
      Schema.Struct({ n: Schema.NumberFromString }),
      Schema.Struct({ n: Schema.Number.check(Schema.isGreaterThan(0)) }),
      Schema.Struct({ n: Schema.Int }),
      Schema.Struct({ n: Schema.Finite }),
      Schema.Struct({ at: Schema.Date }),
      Schema.Struct({ n: Schema.Union([Schema.Number, Schema.String]) }),
      Schema.Struct({ n: Schema.optional(Schema.Number) }),
      // an optional number's JSON link is not Schema.Number's own
      Schema.Struct({ n: Schema.optionalKey(Schema.Number) }),
      Schema.Struct({ n: Schema.Array(Schema.Number) }),
      Schema.Struct({ n: Schema.Number.pipe(Schema.withDecodingDefault(Effect.succeed(1))) }),
      Schema.Struct({ n: Schema.BigInt }),
      Schema.Struct({ s: Schema.Struct({ n: Schema.Number }).check(Schema.makeFilter(() => true)) }),
      Schema.Struct({ n: Schema.Number }).check(Schema.makeFilter(() => true)),
      Schema.Record(Schema.String, Schema.Number),
      Schema.StructWithRest(Schema.Struct({ n: Schema.Number }), [Schema.Record(Schema.String, Schema.Number)]),
      Schema.Struct({}),
      Schema.Unknown,
      class Point extends Schema.Class<Point>("Point")({ x: Schema.Number }) {}
    ]
    for (const schema of general) assert.isUndefined(decoders(schema).fast, String(schema.ast))
  })

  it("a throwing getter is left to the Schema decode", () => {
    const input = Object.defineProperty({ i: 1 }, "t", {
      enumerable: true,
      get() {
        throw new Error("boom")
      }
    })
    assert.strictEqual(decoders(Job).fast!(input), Payload.invalid)
  })

  it("send encodes with it: a valid payload is sent as a copy, an invalid one still fails with the field's path", () =>
    Effect.gen(function*() {
      const job = Actor.make("job", { queue: "q", payload: Job })
      const payload = { i: 1, t: 2 }
      const message = yield* job.send(payload).pipe(Effect.provide(MemoryBroker.layer))
      assert.deepStrictEqual(message.payload, payload)
      const error = yield* Effect.flip(job.send({ i: 1, t: "2" } as never).pipe(Effect.provide(MemoryBroker.layer)))
      assert.strictEqual(error._tag, "InvalidPayload")
      assert.include(error.message, "t")
      // a non-finite number is left to the Schema, which encodes it as a string
      const sent = yield* Effect.gen(function*() {
        yield* job.send({ i: Number.NaN, t: Infinity })
        const broker = yield* Broker.Broker
        return (yield* broker.take({ queue: "q", max: 1, lease: "1 minute" })).deliveries[0]!.body
      }).pipe(Effect.provide(MemoryBroker.layer))
      assert.deepStrictEqual((sent as { payload: unknown }).payload, { i: "NaN", t: "Infinity" })
    }))

  it("a worker dead-letters an invalid payload with the field's path, and runs a valid one with a copy", () => {
    const job = Actor.make("job", { queue: "q", payload: Job })
    return Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      const handler = job.handle((payload) => Ref.update(seen, (all) => [...all, payload]))
      const sent = { i: 1, t: 2 }
      yield* Effect.gen(function*() {
        const broker = yield* Broker.Broker
        const raw = (id: string, payload: unknown): Broker.Outgoing => ({
          id,
          queue: "q",
          priority: 0,
          eta: 0,
          body: { id, actor: "job", queue: "q", payload, enqueuedAt: 0 }
        })
        yield* broker.enqueue([raw("ok", sent), raw("bad-t", { i: 1, t: "two" }), raw("no-i", { t: 2 })])
        const dead = yield* MemoryBroker.join("q")
        const reasons = Object.fromEntries(dead.map((letter) => [letter.id, letter.reason]))
        assert.deepStrictEqual(Object.keys(reasons).sort(), ["bad-t", "no-i"])
        assert.strictEqual(reasons["bad-t"]!.tag, "MessageDecodeError")
        assert.include(reasons["bad-t"]!.message, `"t"`)
        assert.strictEqual(reasons["no-i"]!.tag, "MessageDecodeError")
        assert.include(reasons["no-i"]!.message, `"i"`)
        const [payload] = yield* Ref.get(seen)
        assert.deepStrictEqual(payload, sent)
        assert.notStrictEqual(payload, sent)
      }).pipe(Effect.provide(Worker.layer({ handlers: [handler] }).pipe(Layer.provideMerge(MemoryBroker.layer))))
    })
  })
})
