import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Schedule, Schema } from "effect"
import { Actor, ErrandError } from "../src/index.ts"
import { decide } from "../src/internal/retry.ts"

class Flaky extends Schema.TaggedError<Flaky>()("Flaky", {}) {}
class Invalid extends Schema.TaggedError<Invalid>()("Invalid", { field: Schema.String }) {}

const failure = new Flaky()

const delays = (actor: Actor.Any, attempts: number) =>
  Effect.gen(function*() {
    const out: Array<number | string> = []
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const decision = yield* decide(actor.retryPolicy as never, failure as never, attempt)
      out.push(decision._tag === "Retry" ? decision.delayMillis : decision.why)
    }
    return out
  })

describe("retry policy", () => {
  it.effect("backs off exponentially from 15 s with jitter, capped at 7 days, for 20 retries by default", () =>
    Effect.gen(function*() {
      const actor = Actor.make("defaults", { payload: Schema.Void, error: Flaky })
      const out = yield* delays(actor, 21)
      for (let attempt = 1; attempt <= 20; attempt++) {
        const delay = out[attempt - 1] as number
        const nominal = 15_000 * 2 ** (attempt - 1)
        const max = Duration.toMillis(Duration.days(7))
        assert.isAtLeast(delay, Math.min(15_000, max), `attempt ${attempt}`)
        assert.isAtMost(delay, Math.min(nominal * 1.2, max), `attempt ${attempt}`)
        assert.isAtLeast(delay, Math.min(nominal * 0.8, max), `attempt ${attempt}`)
      }
      assert.strictEqual(out[20], "exhausted") // the 21st run failed: no 21st retry
    }))

  it.effect("honours maxRetries, minBackoff and maxBackoff", () =>
    Effect.gen(function*() {
      const actor = Actor.make("confirm", {
        payload: Schema.Void,
        maxRetries: 3,
        minBackoff: "15 seconds",
        maxBackoff: "20 seconds"
      })
      const out = yield* delays(actor, 4)
      assert.isAtLeast(out[0] as number, 15_000)
      assert.isAtMost(out[0] as number, 18_000)
      assert.isAtLeast(out[1] as number, 15_000) // 30 s jittered, clamped to the 20 s max
      assert.strictEqual(out[1], 20_000)
      assert.strictEqual(out[2], 20_000)
      assert.strictEqual(out[3], "exhausted")
    }))

  it.effect("replays a custom Schedule from the attempt count, and stops when it ends", () =>
    Effect.gen(function*() {
      const actor = Actor.make("custom", {
        payload: Schema.Void,
        retry: Schedule.exponential("1 second", 3).pipe(Schedule.upTo({ times: 3 }))
      })
      assert.deepStrictEqual(yield* delays(actor, 4), [1_000, 3_000, 9_000, "exhausted"])
    }))

  it.effect("never retries an error tag listed in throws", () =>
    Effect.gen(function*() {
      const actor = Actor.make("input", {
        payload: Schema.Void,
        error: Schema.Union([Flaky, Invalid]),
        throws: ["Invalid"]
      })
      const invalid = yield* decide(actor.retryPolicy, new Invalid({ field: "x" }), 1)
      const flaky = yield* decide(actor.retryPolicy, new Flaky(), 1)
      assert.deepStrictEqual(invalid, { _tag: "GiveUp", why: "throws" })
      assert.strictEqual(flaky._tag, "Retry")
    }))

  it.effect("lets retryWhen decide over the typed error and the attempt count", () =>
    Effect.gen(function*() {
      const actor = Actor.make("when", {
        payload: Schema.Void,
        error: Schema.Union([Flaky, Invalid]),
        retry: Schedule.spaced("1 second"),
        retryWhen: (error, attempts) => error._tag === "Flaky" && attempts < 3
      })
      assert.deepStrictEqual(yield* decide(actor.retryPolicy, new Flaky(), 2), { _tag: "Retry", delayMillis: 1_000 })
      assert.deepStrictEqual(yield* decide(actor.retryPolicy, new Flaky(), 3), { _tag: "GiveUp", why: "retryWhen" })
      assert.deepStrictEqual(yield* decide(actor.retryPolicy, new Invalid({ field: "a" }), 1), {
        _tag: "GiveUp",
        why: "retryWhen"
      })
      const timeout = new ErrandError.TimeLimitExceeded({ actor: "when", messageId: "m", timeLimitMillis: 1 })
      assert.deepStrictEqual(yield* decide(actor.retryPolicy, timeout, 1), { _tag: "GiveUp", why: "retryWhen" })
    }))
})
