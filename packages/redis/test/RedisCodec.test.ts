/**
 * The element codec on its own (no Redis): a body whose queue is implied reads back equal to the body sent, whatever
 * characters its id, actor and queue hold; bodies that JSON would not copy field by field are stored as sent.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Codec from "../src/internal/codec.ts"

const names = ["jobs", "a b", "quo\"te", "back\\slash", "tab\there", "ünï©ødé", "emoji 🚀", "", "x".repeat(200)]
const ids = ["m-1", "id with space", "q\"uote", "b\\s", "✓"]

describe("Redis element codec", () => {
  it("reads back every envelope exactly as sent, whatever its id, actor and queue hold", () => {
    for (const queue of names) {
      for (const actor of names) {
        for (const id of ids) {
          const body = { id, actor, queue, payload: { n: 1, s: "~{\"id\"" }, enqueuedAt: 1 }
          for (const priority of [0, 3]) {
            const element = Codec.encode(id, priority, body, queue)!
            const decoded = Codec.decode(element, "fallback", queue)
            assert.deepStrictEqual(decoded.body, body, element)
            assert.strictEqual(Codec.idOf(element, "fallback"), decoded.id)
          }
        }
      }
    }
  })

  it("drops the queue field only from a plain object whose queue is the one written to", () => {
    const body = { id: "m-1", actor: "noop", queue: "jobs", payload: {}, enqueuedAt: 1 }
    assert.strictEqual(
      Codec.encode("m-1", 0, body, "jobs"),
      "~{\"id\":\"m-1\",\"actor\":\"noop\",\"payload\":{},\"enqueuedAt\":1}"
    )
    // another queue's name, an object with toJSON, a class instance: stored as sent
    assert.strictEqual(Codec.encode("m-1", 0, body, "other"), JSON.stringify(body))
    const custom = { ...body, toJSON: () => ({ custom: true }) }
    assert.strictEqual(Codec.encode("m-1", 0, custom, "jobs"), "#[0,0,0,\"m-1\"]\n{\"custom\":true}")
    class Job {
      readonly queue = "jobs"
    }
    assert.strictEqual(Codec.encode("m-1", 0, new Job(), "jobs"), "#[0,0,0,\"m-1\"]\n{\"queue\":\"jobs\"}")
    // any key order: the field comes back as the last key
    const reordered = { queue: "jobs", id: "m-1", n: 1 }
    const element = Codec.encode("m-1", 0, reordered, "jobs")!
    assert.strictEqual(element, "~{\"id\":\"m-1\",\"n\":1}")
    assert.deepStrictEqual(Codec.decode(element, "f", "jobs").body, reordered)
  })

  it("reads a body that is not JSON, or a marked one that is not an object, as its raw text", () => {
    assert.strictEqual(Codec.decode("~[1,2]", "f", "jobs").body, "~[1,2]")
    assert.strictEqual(Codec.decode("~{broken", "f", "jobs").body, "~{broken")
    assert.strictEqual(Codec.decode("plain text", "f", "jobs").body, "plain text")
  })
})
