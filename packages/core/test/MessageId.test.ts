/**
 * The message id grammar (`Message.isMessageId`): what it accepts, and that every id core makes satisfies it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Message } from "@errand/core"
import { messageId } from "../src/internal/id.ts"

describe("Message.isMessageId", () => {
  it("accepts 1 to 255 printable ASCII characters other than a quote and a backslash", () => {
    for (
      const id of [
        "a",
        "a b",
        " ",
        "order:42/refund",
        "0190f0f2-7c1e-7d4e-9d7b-6b0d8a3b1c2d",
        "{x}[y]%z^~!#",
        "z".repeat(255)
      ]
    ) {
      assert.isTrue(Message.isMessageId(id), id)
    }
    for (const id of ["", "z".repeat(256), "a\"b", "a\\b", "a\tb", "a\nb", "caf\u00e9", "\u{1F600}", "\u0000"]) {
      assert.isFalse(Message.isMessageId(id), JSON.stringify(id))
    }
    assert.isFalse(Message.isMessageId(42))
  })

  it("accepts every id core makes", () => {
    for (let i = 0; i < 10_000; i++) {
      const id = messageId()
      assert.isTrue(Message.isMessageId(id), id)
    }
  })
})
