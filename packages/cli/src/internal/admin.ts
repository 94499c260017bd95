/**
 * The admin commands: `errand queues`, `errand dead-letters list|requeue|purge`, `errand enqueue`.
 *
 * @internal
 */
// ErrandError is imported for the declarations: the inferred Command types name BrokerError through it
import { Actor, Broker, type ErrandError, type Message } from "@errand/core"
import { Console, Effect, Option, Schema } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { InvalidInput } from "../CommandError.ts"
import { brokerFlags, brokerLayer, describe } from "./brokerFlags.ts"
import { optionalDuration } from "./duration.ts"
import { findActors, importModule } from "./load.ts"

const json = Flag.Boolean("json").pipe(
  Flag.withDescription(describe("Print JSON (one document) instead of a table", { default: "false" })),
  Flag.withDefault(false)
)

/** Prints rows as an aligned table. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}

/** Prints `value` as JSON, or `text()` otherwise. */
export const print = (asJson: boolean, value: unknown, text: () => string) =>
  Console.log(asJson ? JSON.stringify(value, null, 2) : text())

// ---- errand queues ----

export const queues = Command.make("queues", { json, ...brokerFlags }, (flags) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const names = yield* broker.queues
    const stats = yield* Effect.forEach(names, (queue) => Effect.map(broker.stats(queue), (s) => ({ queue, ...s })))
    yield* print(flags.json, stats, () =>
      stats.length === 0 ? "No queues." : table(
        ["QUEUE", "READY", "DELAYED", "IN FLIGHT", "DEAD"],
        stats.map((s) => [s.queue, String(s.ready), String(s.delayed), String(s.inFlight), String(s.dead)])
      ))
  }).pipe(Effect.provide(brokerLayer(flags)))).pipe(
    Command.withDescription("List the queues with their ready, delayed, in-flight and dead messages")
  )

// ---- errand dead-letters ----

const queueArgument = Argument.String("queue").pipe(Argument.withDescription("The queue"))
const ids = Flag.String("id").pipe(
  Flag.withDescription(describe("A dead letter's message id; repeat for several", { default: "all of the queue's" })),
  Flag.atLeast(0)
)

const selection = (chosen: ReadonlyArray<string>): Broker.DeadLetterSelection =>
  chosen.length === 0 ? {} : { ids: chosen }

const list = Command.make("list", {
  queue: queueArgument,
  limit: Flag.Int("limit").pipe(
    Flag.withDescription(describe("List at most this many, oldest first", { default: "all" })),
    Flag.optional
  ),
  json,
  ...brokerFlags
}, (flags) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const letters = yield* broker.deadLetters(flags.queue, { limit: Option.getOrUndefined(flags.limit) })
    const rows = letters.map((letter) => ({
      id: letter.id,
      actor: typeof letter.body === "object" && letter.body !== null && "actor" in letter.body
        ? String(letter.body.actor)
        : "?",
      attempts: letter.attempts,
      deadAt: new Date(letter.deadAt).toISOString(),
      reason: letter.reason,
      body: letter.body
    }))
    yield* print(flags.json, rows, () =>
      rows.length === 0 ? `No dead letters in "${flags.queue}".` : table(
        ["ID", "ACTOR", "ATTEMPTS", "DEAD AT", "REASON"],
        rows.map((row) => [
          row.id,
          row.actor,
          String(row.attempts),
          row.deadAt,
          `[${row.reason.tag}] ${row.reason.message}`.slice(0, 100)
        ])
      ))
  }).pipe(Effect.provide(brokerLayer(flags)))).pipe(Command.withDescription("List a queue's dead letters"))

const requeue = Command.make(
  "requeue",
  { queue: queueArgument, ids, json, ...brokerFlags },
  (flags) =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const moved = yield* broker.requeueDeadLetters(flags.queue, selection(flags.ids))
      yield* print(
        flags.json,
        { queue: flags.queue, requeued: moved },
        () => `Requeued ${moved} dead letter(s) of "${flags.queue}" (attempts reset to 0).`
      )
    }).pipe(Effect.provide(brokerLayer(flags)))
).pipe(
  Command.withDescription("Move dead letters back to their queue, ready at once, with attempts reset")
)

const purge = Command.make(
  "purge",
  { queue: queueArgument, ids, json, ...brokerFlags },
  (flags) =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const deleted = yield* broker.purgeDeadLetters(flags.queue, selection(flags.ids))
      yield* print(
        flags.json,
        { queue: flags.queue, purged: deleted },
        () => `Purged ${deleted} dead letter(s) of "${flags.queue}".`
      )
    }).pipe(Effect.provide(brokerLayer(flags)))
).pipe(Command.withDescription("Delete dead letters"))

export const deadLetters = Command.make("dead-letters").pipe(
  Command.withDescription("Inspect, requeue or purge a queue's dead letters"),
  Command.withSubcommands([list, requeue, purge])
)

// ---- errand enqueue ----

type AnyActor = Actor.Actor<string, Schema.Top, Schema.Top, Schema.Top>

export const enqueue = Command.make("enqueue", {
  actor: Argument.String("actor").pipe(Argument.withDescription("The actor's name")),
  payload: Flag.String("payload").pipe(Flag.withDescription("The payload, as JSON (the actor's encoded form)")),
  module: Flag.String("module").pipe(
    Flag.withDescription(
      describe("A module exporting the actor (e.g. the worker module): the payload is validated against its schema", {
        default: "none: sent as given"
      })
    ),
    Flag.optional
  ),
  queue: Flag.String("queue").pipe(
    Flag.withDescription(describe("The queue, without --module", { default: "default" })),
    Flag.optional
  ),
  delay: Flag.String("delay").pipe(
    Flag.withDescription(describe("Run no earlier than this from now (30s, 5m, 1h)", { default: "none" })),
    Flag.optional
  ),
  priority: Flag.Int("priority").pipe(
    Flag.withDescription(describe("Lower runs first", { default: "the actor's, else 0" })),
    Flag.optional
  ),
  json,
  ...brokerFlags
}, (flags) =>
  Effect.gen(function*() {
    const parsed = yield* Effect.try({
      try: () => JSON.parse(flags.payload) as unknown,
      catch: (error) => new InvalidInput({ input: "--payload", problem: `not JSON: ${(error as Error).message}` })
    })
    const delay = yield* optionalDuration("--delay", flags.delay)
    const options = { delay, priority: Option.getOrUndefined(flags.priority) }
    let actor: AnyActor
    let payload: unknown = parsed
    if (Option.isSome(flags.module)) {
      const found = findActors(yield* importModule(flags.module.value)).get(flags.actor)
      if (found === undefined) {
        return yield* new InvalidInput({
          input: "actor",
          problem: `${flags.module.value} exports no actor named "${flags.actor}"`
        })
      }
      actor = found as unknown as AnyActor
      payload = yield* Schema.decodeUnknownEffect(Schema.toCodecJson(actor.payloadSchema))(parsed).pipe(
        Effect.mapError((error) =>
          new InvalidInput({ input: "--payload", problem: `does not match ${flags.actor}'s schema: ${error.message}` })
        )
      ) as Effect.Effect<unknown, InvalidInput>
    } else {
      actor = yield* Effect.try({
        try: () =>
          Actor.make(flags.actor, {
            queue: Option.getOrElse(flags.queue, () => "default"),
            payload: Schema.Unknown
          }) as unknown as AnyActor,
        catch: (error) => new InvalidInput({ input: "actor", problem: (error as Error).message })
      })
    }
    const message = yield* (actor.send(payload, options) as Effect.Effect<Message.Message, unknown, Broker.Broker>)
      .pipe(
        Effect.mapError((error) =>
          error instanceof Error && "_tag" in error && error._tag === "InvalidPayload"
            ? new InvalidInput({ input: "--payload", problem: error.message })
            : error
        )
      )
    const sent = { id: message.id, actor: message.actor, queue: message.queue, eta: message.eta }
    yield* print(flags.json, sent, () =>
      `Sent ${sent.actor} ${sent.id} to "${sent.queue}"${
        message.eta > message.enqueuedAt ? `, due at ${new Date(message.eta).toISOString()}` : ""
      }.`)
  }).pipe(Effect.provide(brokerLayer(flags)))).pipe(
    Command.withDescription(
      "Send one message to an actor, e.g. errand enqueue send_welcome_email --payload '{\"userId\":1}'"
    )
  )
