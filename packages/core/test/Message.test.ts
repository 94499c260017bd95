import { assert, describe, it } from "@effect/vitest"
import { Exit, Schema } from "effect"
import { Message } from "../src/index.ts"
import { isEnvelope } from "../src/internal/envelope.ts"

const valid = { id: "m1", actor: "a", queue: "q", payload: { n: 1 }, enqueuedAt: 1 }

const samples: ReadonlyArray<unknown> = [
  valid,
  { ...valid, eta: 5, priority: -1, options: { x: 1 } },
  { ...valid, payload: null },
  { ...valid, payload: undefined },
  { ...valid, eta: "5" },
  { ...valid, priority: null },
  { ...valid, options: [] },
  { ...valid, options: null },
  { ...valid, enqueuedAt: "1" },
  { ...valid, key: "order-42", keyTtl: 1000 },
  { ...valid, key: 42 },
  { ...valid, keyTtl: "1" },
  { id: "m1", actor: "a", queue: "q", enqueuedAt: 1 },
  { actor: "a", queue: "q", payload: {}, enqueuedAt: 1 },
  { ...valid, id: 7 },
  { ...valid, limits: {} },
  { ...valid, limits: { maxRetries: 2, minBackoff: 0, maxBackoff: 10, timeLimit: 5, maxAge: 1 } },
  { ...valid, limits: { maxRetries: 1.5 } },
  { ...valid, limits: { maxRetries: -1 } },
  { ...valid, limits: { minBackoff: -1 } },
  { ...valid, limits: { timeLimit: 0 } },
  { ...valid, limits: { maxAge: "1" } },
  { ...valid, limits: null },
  { ...valid, limits: [] },
  // optional keys present with `undefined` are invalid; absent ones are fine
  { ...valid, eta: undefined },
  { ...valid, priority: undefined },
  { ...valid, key: undefined },
  { ...valid, keyTtl: undefined },
  { ...valid, limits: undefined },
  { ...valid, options: undefined },
  { ...valid, onSuccess: undefined },
  { ...valid, group: undefined },
  { ...valid, onSuccess: { actor: "b", queue: "q" } },
  { ...valid, onFailure: { actor: "b" } },
  { ...valid, pipeline: [{ actor: "b", queue: "q", priority: 1 }] },
  Object.assign(Object.create({ eta: 1 }), valid),
  Object.assign(Object.create({ eta: "1" }), valid),
  "a string",
  42,
  null,
  [],
  [valid]
]

describe("Message", () => {
  it("the worker's fast envelope check agrees with the Envelope schema", () => {
    const decode = Schema.decodeUnknownExit(Message.Envelope)
    for (const sample of samples) {
      assert.strictEqual(isEnvelope(sample), Exit.isSuccess(decode(sample)), JSON.stringify(sample) ?? String(sample))
    }
  })

  it("the envelope round-trips through JSON", () => {
    const envelope = { ...valid, eta: 10, priority: 2, options: { tag: "x" } }
    const decoded = Schema.decodeUnknownSync(Schema.fromJsonString(Message.Envelope))(JSON.stringify(envelope))
    assert.deepStrictEqual(decoded, envelope)
  })
})
