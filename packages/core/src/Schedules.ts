/**
 * Cron schedules: send an actor's message at every slot of a cron expression, exactly once per slot however many
 * schedulers run.
 *
 * ```ts
 * const SchedulesLive = Schedules.layer([
 *   { name: "cleanup_old_data", actor: cleanupOldData, cron: "0 2 * * *" },
 *   { name: "send_daily_report", actor: sendDailyReport, cron: "0 9 * * 1-5", tz: "Europe/Berlin" }
 * ]) // Layer<never, InvalidSchedule, Broker>
 * ```
 *
 * **Guarantees**
 *
 * - One message per slot, across any number of schedulers in any processes and hosts: each scheduler claims the slot
 *   in the broker (`Broker.claimSlot`), and the claim and the enqueue are one atomic step, so a scheduler that dies
 *   between them cannot lose or duplicate the slot.
 * - Cron expressions are Effect's `Cron` (five fields, or six with seconds first), in the schedule's time zone
 *   (`tz`, an IANA name; default UTC). Daylight saving is `Cron`'s: a local time skipped by the clock change runs
 *   shifted by the gap (02:30 runs at 03:30 that night), and a repeated local time runs once (its earlier occurrence).
 * - **Misfires**: a scheduler that starts (or wakes after its process was suspended) runs only the most recent slot at
 *   or before now that no scheduler claimed yet — at most one catch-up, never a burst of missed runs. Set
 *   `catchUp: false` on a schedule to skip the catch-up at start. Note that a new schedule's most recent slot counts
 *   as missed on its first start.
 * - A broker outage delays the claim (retried with backoff, logged); it does not stop the scheduler.
 * - Time is Effect's `Clock`: under `TestClock` a day of schedules passes in a test.
 *
 * The message of a slot carries `options.schedule` (the schedule's name) and `options.slot` (the slot, epoch ms), so a
 * handler can tell which run it is (`yield* Worker.CurrentMessage`).
 *
 * @since 0.1.0
 */
import { Clock, Cron, Duration, Effect, Layer, Result, Schedule, Schema, type Scope } from "effect"
import * as Actor from "./Actor.ts"
import { Broker, type Outgoing } from "./Broker.ts"
import { InvalidSchedule } from "./ErrandError.ts"
import { isValidName } from "./internal/names.ts"
import type { Message } from "./Message.ts"

/**
 * One schedule: send `payload` to `actor` at every slot of `cron`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Entry {
  /** A unique name, like an actor's (`[a-zA-Z_][a-zA-Z0-9._-]*`): the broker keeps the last claimed slot under it. */
  readonly name: string
  /** The actor whose message is sent. */
  readonly actor: Actor.Any
  /** A cron expression: five fields (minute hour day month weekday), or six with seconds first. */
  readonly cron: string
  /** An IANA time zone (`"Europe/Berlin"`); default UTC. */
  readonly tz?: string | undefined
  /** The payload, checked against the actor's schema at start (default `{}`). */
  readonly payload?: unknown
  /** Enqueue the most recent slot missed while no scheduler ran, at start (default true). */
  readonly catchUp?: boolean | undefined
}

/**
 * A schedule whose payload is checked against its actor's payload type.
 *
 * @category constructors
 * @since 0.1.0
 */
export const entry = <A extends Actor.Any>(
  options: {
    readonly name: string
    readonly actor: A
    readonly cron: string
    readonly tz?: string | undefined
    readonly payload?: A["payloadSchema"]["Type"]
    readonly catchUp?: boolean | undefined
  }
): Entry => options

/**
 * A schedule checked and ready to run.
 *
 * @category models
 * @since 0.1.0
 */
export interface Compiled {
  readonly entry: Entry
  readonly cron: Cron.Cron
  /** The payload, encoded by the actor's schema. */
  readonly encoded: unknown
}

const parseCron = (entry: Entry): Result.Result<Cron.Cron, string> => {
  try {
    return Result.mapError(Cron.parse(entry.cron, entry.tz ?? "UTC"), (error) => error.message)
  } catch (error) {
    return Result.fail(error instanceof Error ? error.message : String(error))
  }
}

/**
 * Checks schedules: names valid and unique, cron expressions and time zones that parse, payloads that match.
 *
 * @category constructors
 * @since 0.1.0
 */
export const compile = (entries: ReadonlyArray<Entry>): Effect.Effect<ReadonlyArray<Compiled>, InvalidSchedule> =>
  Effect.gen(function*() {
    const names = new Set<string>()
    const compiled: Array<Compiled> = []
    for (const entry of entries) {
      const invalid = (problem: string) => new InvalidSchedule({ schedule: entry.name, problem })
      if (!isValidName(entry.name)) return yield* invalid("names must match [a-zA-Z_][a-zA-Z0-9._-]*")
      if (names.has(entry.name)) return yield* invalid("two schedules have this name")
      names.add(entry.name)
      const cron = parseCron(entry)
      if (Result.isFailure(cron)) {
        return yield* invalid(`cron "${entry.cron}"${entry.tz === undefined ? "" : ` in ${entry.tz}`}: ${cron.failure}`)
      }
      const encode = Schema.encodeUnknownEffect(Schema.toCodecJson(entry.actor.payloadSchema)) as (
        u: unknown
      ) => Effect.Effect<unknown, Schema.SchemaError>
      const encoded = yield* Effect.mapError(
        encode(entry.payload ?? {}),
        (error) => invalid(`its payload does not match ${entry.actor.name}'s schema: ${error.message}`)
      )
      compiled.push({ entry, cron: cron.success, encoded })
    }
    return compiled
  })

/**
 * The slots of a schedule after `now` (epoch ms), for listings.
 *
 * @category getters
 * @since 0.1.0
 */
export const nextSlots = (schedule: Compiled, now: number, count: number): ReadonlyArray<Date> => {
  const out: Array<Date> = []
  let from = now
  for (let i = 0; i < count; i++) {
    const next = Cron.next(schedule.cron, from)
    out.push(next)
    from = next.getTime()
  }
  return out
}

/** The most recent slot at or before `now`. */
const latestSlot = (cron: Cron.Cron, now: number): number => Cron.prev(cron, now + 1).getTime()

/** Broker outages: 1 s doubling to 30 s between attempts of one claim. */
const brokerRetry = Schedule.exponential("1 second").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(30))))
)

/** The message of one slot: the actor's own, so it carries the actor's priority and limits. */
const slotMessage = (schedule: Compiled, slot: number): Effect.Effect<Outgoing> => {
  const actor = schedule.entry.actor as unknown as Actor.Actor<string, Schema.Top, Schema.Top, Schema.Top>
  const message = actor.message(schedule.entry.payload ?? {}, {
    options: { schedule: schedule.entry.name, slot }
  }) as Effect.Effect<Message, unknown>
  // the payload was checked by `compile`
  return Effect.map(Effect.orDie(message), Actor.outgoing)
}

/** Claims a slot (retrying while the broker is down) and logs what happened. */
const fire = (broker: Broker["Service"], schedule: Compiled, slot: number) =>
  Effect.gen(function*() {
    const message = yield* slotMessage(schedule, slot)
    const claimed = yield* broker.claimSlot(schedule.entry.name, slot, message).pipe(
      Effect.tapError((error) => Effect.logWarning(`Could not claim a slot; retrying`, error)),
      Effect.retry(brokerRetry),
      Effect.orDie
    )
    const when = new Date(slot).toISOString()
    yield* claimed
      ? Effect.logInfo(`Sent ${schedule.entry.actor.name} ${message.id} for the ${when} slot`)
      : Effect.logDebug(`The ${when} slot was already sent by another scheduler`)
  })

/** The catch-up at start: the most recent slot, unless some scheduler claimed it (or a later one). */
const catchUp = (broker: Broker["Service"], schedule: Compiled, now: number): Effect.Effect<void> =>
  schedule.entry.catchUp === false ? Effect.void : fire(broker, schedule, latestSlot(schedule.cron, now)).pipe(
    Effect.annotateLogs({ module: "Schedules", schedule: schedule.entry.name })
  )

/** Runs one schedule from `start` (its catch-up done) until interrupted. */
const run = (broker: Broker["Service"], schedule: Compiled, start: number): Effect.Effect<never> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    let now = start
    let next = Cron.next(schedule.cron, now).getTime()
    while (true) {
      now = clock.currentTimeMillisUnsafe()
      if (now < next) {
        yield* Effect.sleep(next - now)
        continue
      }
      // Woken at or after the slot: run the most recent one (after a suspended process, the missed ones but the last
      // are skipped).
      const slot = latestSlot(schedule.cron, now)
      yield* fire(broker, schedule, slot)
      next = Cron.next(schedule.cron, slot).getTime()
    }
  }).pipe(Effect.annotateLogs({ module: "Schedules", schedule: schedule.entry.name })) as Effect.Effect<never>

/**
 * Starts the schedulers in the current scope: one fiber per schedule, until the scope closes. Fails with
 * `InvalidSchedule` before starting any when a schedule is invalid.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  entries: ReadonlyArray<Entry>
): Effect.Effect<void, InvalidSchedule, Broker | Scope.Scope> =>
  Effect.gen(function*() {
    const schedules = yield* compile(entries)
    const broker = yield* Broker
    const now = yield* Clock.currentTimeMillis
    // the catch-ups are sent before `make` returns; then one fiber per schedule waits for its slots
    yield* Effect.forEach(schedules, (schedule) => catchUp(broker, schedule, now), { discard: true })
    for (const schedule of schedules) yield* Effect.forkScoped(run(broker, schedule, now))
    if (schedules.length > 0) {
      yield* Effect.logInfo(
        `Schedules started: ${schedules.map((s) => `${s.entry.name} (${s.entry.cron})`).join(", ")}`
      )
    }
  }).pipe(Effect.annotateLogs({ module: "Schedules" }))

/**
 * The schedulers as a Layer: they run while the layer's scope is open. Run it in every worker process if you like:
 * each slot is still sent once.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (entries: ReadonlyArray<Entry>): Layer.Layer<never, InvalidSchedule, Broker> =>
  Layer.effectDiscard(make(entries))
