import { assert, describe, it } from "@effect/vitest"
import { Worker } from "@errand/core"
import { MemoryBroker } from "@errand/memory"
import { Effect, Layer, Ref } from "effect"
import { TestClock } from "effect/testing"
import { sendOrderConfirmation, sendReminder, sendWelcomeEmail } from "../src/actors.ts"
import { handlers } from "../src/handlers.ts"
import { MailerDown, MailerRecording, SentMail, UsersLive } from "../src/services.ts"

/** The example worker over a fresh memory broker, with the given mailer. */
const app = <M>(mailer: Layer.Layer<M>) =>
  Worker.layer({ handlers, concurrency: 4 }).pipe(
    Layer.provideMerge(MemoryBroker.layer),
    Layer.provideMerge(Layer.merge(UsersLive, mailer))
  )

/**
 * A bound for a hang, not for speed: moving the TestClock by hours runs every idle take of the worker in between (one
 * per 5 s of virtual time, about 1 s of CPU for a day idle, twice that on a loaded machine).
 */
const timeout = 30_000

describe("the example app", () => {
  it.effect("sends a welcome email", () =>
    Effect.gen(function*() {
      yield* sendWelcomeEmail.send({ userId: 1 })
      assert.deepStrictEqual(yield* MemoryBroker.join("email"), [])
      const sent = yield* Ref.get(yield* SentMail)
      assert.deepStrictEqual(sent.map((mail) => [mail.template, mail.to]), [["welcome", "ada@example.com"]])
    }).pipe(Effect.provide(app(MailerRecording))), timeout)

  it.effect(
    "dead-letters a welcome email for an unknown user at once: UserNotFound is in throws",
    () =>
      Effect.gen(function*() {
        yield* sendWelcomeEmail.send({ userId: 42 })
        const dead = yield* MemoryBroker.join("email")
        assert.strictEqual(dead.length, 1)
        assert.strictEqual(dead[0]!.reason.tag, "UserNotFound")
        assert.strictEqual(dead[0]!.attempts, 1)
      }).pipe(Effect.provide(app(MailerRecording))),
    timeout
  )

  it.effect("retries the order confirmation, then dead-letters it", () =>
    Effect.gen(function*() {
      yield* sendOrderConfirmation.send({ orderId: "o-1", email: "ada@example.com" })
      yield* TestClock.adjust("2 hours") // every backoff elapses instantly
      const dead = yield* MemoryBroker.deadLetters("email")
      assert.strictEqual(dead.length, 1)
      assert.strictEqual(dead[0]!.attempts, 4) // 1 run + 3 retries
      assert.strictEqual(dead[0]!.reason.tag, "MailerUnavailable")
    }).pipe(Effect.provide(app(MailerDown))), timeout)

  it.effect("holds a reminder in the broker until its delay has passed", () =>
    Effect.gen(function*() {
      yield* sendReminder.send({ userId: 2, note: "hello" }, { delay: "1 day" })
      yield* TestClock.adjust("23 hours")
      assert.deepStrictEqual(yield* Ref.get(yield* SentMail), [])
      yield* TestClock.adjust("1 hour")
      const sent = yield* Ref.get(yield* SentMail)
      assert.deepStrictEqual(sent.map((mail) => [mail.template, mail.to]), [["reminder", "grace@example.com"]])
    }).pipe(Effect.provide(app(MailerRecording))), timeout)
})
