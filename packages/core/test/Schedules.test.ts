import { assert, describe, it } from "@effect/vitest"
import { MemoryBroker } from "@errand/memory"
import { Effect, Exit, Layer, References, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Actor, Broker, type ErrandError, Schedules } from "../src/index.ts"

const cleanup = Actor.make("cleanup_old_data", {
  queue: "maintenance",
  payload: Schema.Struct({ days: Schema.Number })
})

/** The slots of the messages waiting on the maintenance queue, as ISO strings (and takes them). */
const sentSlots = Effect.gen(function*() {
  const broker = yield* Broker.Broker
  const taken = yield* broker.take({ queue: "maintenance", max: 1000, lease: "1 hour" })
  yield* broker.settle(taken.deliveries.map((delivery) => ({ _tag: "Ack", delivery })))
  return taken.deliveries.map((delivery) => {
    const envelope = delivery.body as { readonly options: { readonly slot: number; readonly schedule: string } }
    return new Date(envelope.options.slot).toISOString()
  })
})

/** Starts schedulers in a scope of their own, to stop them (a process dying) with `Scope.close`. */
const startSchedulers = (entries: ReadonlyArray<Schedules.Entry>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Scope.provide(scope)(Schedules.make(entries))
    return scope
  })

const quiet = Effect.provideService(References.MinimumLogLevel, "Warn")

describe("Schedules", () => {
  it.effect("'0 2 * * *' in Europe/Berlin fires once a day at 02:00 local time, across the end of summer time", () =>
    Effect.gen(function*() {
      // Summer time ends on 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:00 happens twice that night
      yield* TestClock.setTime(Date.parse("2026-10-23T12:00:00Z"))
      yield* startSchedulers([{
        name: "cleanup",
        actor: cleanup,
        cron: "0 2 * * *",
        tz: "Europe/Berlin",
        payload: { days: 30 },
        catchUp: false
      }])
      yield* TestClock.adjust("4 days")
      assert.deepStrictEqual(yield* sentSlots, [
        "2026-10-24T00:00:00.000Z", // 02:00 CEST
        "2026-10-25T00:00:00.000Z", // the first 02:00 of the night (CEST); the repeated one is not run again
        "2026-10-26T01:00:00.000Z", // 02:00 CET
        "2026-10-27T01:00:00.000Z"
      ])
    }).pipe(Effect.provide(MemoryBroker.layer), quiet))

  it.effect("'30 2 * * *' in Europe/Berlin runs at 03:30 on the night summer time starts (02:30 does not exist)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-27T12:00:00Z"))
      yield* startSchedulers([{
        name: "cleanup",
        actor: cleanup,
        cron: "30 2 * * *",
        tz: "Europe/Berlin",
        payload: { days: 30 },
        catchUp: false
      }])
      yield* TestClock.adjust("3 days")
      assert.deepStrictEqual(yield* sentSlots, [
        "2026-03-28T01:30:00.000Z", // 02:30 CET
        "2026-03-29T01:30:00.000Z", // 03:30 CEST: the clock jumped from 02:00 to 03:00
        "2026-03-30T00:30:00.000Z" // 02:30 CEST
      ])
    }).pipe(Effect.provide(MemoryBroker.layer), quiet))

  it.effect("three schedulers on one broker send each slot once", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-01T00:00:30Z"))
      const entries: ReadonlyArray<Schedules.Entry> = [{
        name: "every_minute",
        actor: cleanup,
        cron: "* * * * *",
        payload: { days: 1 },
        catchUp: false
      }]
      for (let i = 0; i < 3; i++) yield* startSchedulers(entries)
      yield* TestClock.adjust("10 minutes")
      const slots = yield* sentSlots
      assert.strictEqual(slots.length, 10)
      assert.strictEqual(new Set(slots).size, 10)
    }).pipe(Effect.provide(MemoryBroker.layer), quiet))

  it.effect("a scheduler restarted after missing slots sends one catch-up (the latest missed slot), then goes on", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-01T10:30:00Z"))
      const entries: ReadonlyArray<Schedules.Entry> = [{
        name: "hourly",
        actor: cleanup,
        cron: "0 * * * *",
        payload: { days: 7 }
      }]
      const first = yield* startSchedulers(entries)
      yield* TestClock.adjust("1 hour")
      // started at 10:30: the 10:00 slot was caught up, 11:00 ran on time
      assert.deepStrictEqual(yield* sentSlots, ["2026-03-01T10:00:00.000Z", "2026-03-01T11:00:00.000Z"])
      yield* Scope.close(first, Exit.void) // every scheduler down
      yield* TestClock.adjust("5 hours") // 12:00 … 16:00 missed
      // three schedulers start again: one catch-up between them, of the latest missed slot only
      for (let i = 0; i < 3; i++) yield* startSchedulers(entries)
      assert.deepStrictEqual(yield* sentSlots, ["2026-03-01T16:00:00.000Z"])
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(yield* sentSlots, ["2026-03-01T17:00:00.000Z"])
    }).pipe(Effect.provide(MemoryBroker.layer), quiet))

  it.effect("an invalid cron, time zone, name or payload fails with InvalidSchedule before anything runs", () =>
    Effect.gen(function*() {
      const problem = (entry: Partial<Schedules.Entry>) =>
        Effect.flip(
          Schedules.compile([{ name: "s", actor: cleanup, cron: "0 2 * * *", payload: { days: 1 }, ...entry }])
        )
          .pipe(Effect.map((error: ErrandError.InvalidSchedule) => error.problem))
      assert.include(yield* problem({ cron: "0 2 * *" }), "cron")
      assert.include(yield* problem({ cron: "0 25 * * *" }), "cron")
      assert.include(yield* problem({ tz: "Mars/Olympus" }), "Mars/Olympus")
      assert.include(yield* problem({ name: "no spaces" }), "names must match")
      assert.include(yield* problem({ payload: { days: "thirty" } }), "payload")
      const twice = yield* Effect.flip(Schedules.compile([
        { name: "s", actor: cleanup, cron: "0 2 * * *", payload: { days: 1 } },
        { name: "s", actor: cleanup, cron: "0 3 * * *", payload: { days: 1 } }
      ]))
      assert.include(twice.problem, "two schedules")
      const layerExit = yield* Effect.exit(Layer.build(Schedules.layer([{ name: "x", actor: cleanup, cron: "nope" }])))
      assert.isTrue(Exit.isFailure(layerExit))
    }).pipe(Effect.provide(MemoryBroker.layer), Effect.scoped))

  it.effect("lists a schedule's next slots", () =>
    Effect.gen(function*() {
      const [compiled] = yield* Schedules.compile([
        { name: "report", actor: cleanup, cron: "0 9 * * 1-5", tz: "Europe/Berlin", payload: { days: 1 } }
      ])
      const next = Schedules.nextSlots(compiled!, Date.parse("2026-11-27T12:00:00Z"), 2) // a Friday
      assert.deepStrictEqual(next.map((date) => date.toISOString()), [
        "2026-11-30T08:00:00.000Z", // Monday 09:00 CET
        "2026-12-01T08:00:00.000Z"
      ])
    }))
})
