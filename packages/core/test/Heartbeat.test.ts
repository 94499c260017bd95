/**
 * Heartbeats: a worker process reports its queues, running handlers, totals per actor and schedules to the broker at
 * a bounded rate (never per message), and its report expires when it stops reporting.
 */
import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Effect, Exit, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Broker, Heartbeat, Schedules, Worker } from "../src/index.ts"

const Job = Schema.Struct({ n: Schema.Number })
class Boom extends Schema.TaggedError<Boom>()("Boom", { n: Schema.Number }) {}

describe("Heartbeat", () => {
  it.effect("reports totals per actor, running handlers and schedules' next runs, then expires", () => {
    const ok = Actor.make("hb_ok", { queue: "hq", payload: Job })
    const doomed = Actor.make("hb_doomed", {
      queue: "hq",
      payload: Job,
      error: Boom,
      maxRetries: 1,
      minBackoff: "1 second"
    })
    const slow = Actor.make("hb_slow", { queue: "hq", payload: Job })
    const handlers = [
      ok.handle(() => Effect.sleep("2 seconds")),
      doomed.handle(({ n }) => Effect.fail(new Boom({ n }))),
      slow.handle(() => Effect.sleep("1 minute"))
    ]
    const schedules = [Schedules.entry({ name: "hourly", actor: ok, cron: "0 * * * *", payload: { n: 0 } })]
    return Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-11-29T10:20:00Z"))
      yield* Effect.gen(function*() {
        yield* ok.send({ n: 1 })
        yield* ok.send({ n: 2 })
        yield* doomed.send({ n: 3 })
        yield* slow.send({ n: 4 })
        yield* TestClock.adjust("30 seconds")
        const [report, ...others] = yield* Heartbeat.reports
        assert.strictEqual(others.length, 0)
        assert.strictEqual(report?.id, "worker-1")
        assert.deepStrictEqual(report?.queues, ["hq"])
        assert.strictEqual(report?.inFlight, 1) // the slow handler
        const totals = (actor: string) => report?.actors.find((totals) => totals.actor === actor)
        assert.deepStrictEqual(totals("hb_ok"), {
          actor: "hb_ok",
          queue: "hq",
          started: 2,
          succeeded: 2,
          failed: 0,
          runs: 2,
          runMillis: 4_000
        })
        // one failed run retried, one dead-lettered
        assert.deepInclude(totals("hb_doomed"), { started: 2, succeeded: 0, failed: 2, runs: 2 })
        assert.deepInclude(totals("hb_slow"), { started: 1, runs: 0 })
        assert.deepStrictEqual(report?.schedules, [{
          name: "hourly",
          actor: "hb_ok",
          queue: "hq",
          cron: "0 * * * *",
          tz: "UTC",
          nextRun: Date.parse("2026-11-29T11:00:00Z")
        }])
        yield* TestClock.adjust("1 minute") // the slow handler finishes, so the worker stops at once
      }).pipe(
        Effect.provide(Worker.layer({ handlers })),
        Effect.provide(Heartbeat.layer({ id: "worker-1", queues: ["hq"], schedules, every: "5 seconds" }))
      )
      // Stopped: its last report lives for its ttl (3 × 5 s), then it is gone
      assert.strictEqual((yield* Heartbeat.reports).length, 1)
      yield* TestClock.adjust("16 seconds")
      assert.deepStrictEqual(yield* Heartbeat.reports, [])
    }).pipe(Effect.provide(MemoryBroker.layer))
  })

  it.effect("sends one heartbeat per interval, however many messages run", () =>
    Effect.gen(function*() {
      const calls = { heartbeat: 0 }
      const counting = Layer.effect(
        Broker.Broker,
        Effect.map(Broker.Broker, (broker) =>
          Broker.Broker.of({
            ...broker,
            heartbeat: (beat) => Effect.andThen(Effect.sync(() => calls.heartbeat++), broker.heartbeat(beat))
          }))
      )
      const quick = Actor.make("hb_quick", { queue: "hq2", payload: Job })
      yield* Effect.gen(function*() {
        yield* quick.sendBatch(Array.from({ length: 200 }, (_, n) => ({ n })))
        yield* MemoryBroker.join("hq2")
        yield* TestClock.adjust("20 seconds")
        const [report] = yield* Heartbeat.reports
        assert.deepInclude(report?.actors[0], { actor: "hb_quick", succeeded: 200 })
      }).pipe(
        Effect.provide(Worker.layer({ handlers: [quick.handle(() => Effect.void)] })),
        Effect.provide(Heartbeat.layer({ every: "10 seconds" })),
        Effect.provide(counting)
      )
      // at start, then at 10 s and 20 s
      assert.strictEqual(calls.heartbeat, 3)
    }).pipe(Effect.provide(MemoryBroker.layer)))

  it.effect("refuses an interval under 100 ms or a ttl shorter than the interval", () =>
    Effect.gen(function*() {
      const short = yield* Effect.exit(Layer.build(Heartbeat.layer({ every: "10 millis" })).pipe(Effect.scoped))
      assert.isTrue(Exit.isFailure(short))
      const ttl = yield* Effect.flip(
        Layer.build(Heartbeat.layer({ every: "5 seconds", ttl: "1 second" })).pipe(Effect.scoped)
      )
      assert.strictEqual(ttl._tag, "InvalidOption")
    }).pipe(Effect.provide(MemoryBroker.layer)))

  it.effect("refuses an empty process id at build (the broker would refuse every beat)", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Heartbeat.layer({ id: "" })).pipe(Effect.scoped))
      assert.deepInclude(error, { _tag: "InvalidOption", option: "id" })
    }).pipe(Effect.provide(MemoryBroker.layer)))
})
