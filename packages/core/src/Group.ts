/**
 * Groups: messages sent together, with callbacks when all of them succeeded or one failed (Dramatiq's `group`, with
 * the failure callback Dramatiq lacks).
 *
 * ```ts
 * const group = yield* Group.run(
 *   [yield* notify.message({ userId: 1 }), yield* notify.message({ userId: 2 })],
 *   { onComplete: yield* summarize.message({ day }), onFailure: yield* alertAdmin.message({ what: "notify" }) }
 * )
 * const [first, second] = yield* Group.results(group, { timeout: "1 minute" }) // typed, in order
 * ```
 *
 * All members are enqueued in one broker call. Completion is counted **in the broker**, atomically: each member's
 * worker records the member's outcome (`Broker.recordGroupMember`, once per member however often it runs) before it
 * acks the member, and the member whose record completes the group sends `onComplete`; the first member that fails
 * for good sends `onFailure`, and then `onComplete` never fires. No process polls, and the count survives worker
 * crashes: a member whose worker died runs again and finds itself already counted. Its callback is sent again if
 * the worker died after sending it and before acking (at-least-once, like every follow-up message); the callback's
 * own id is the same each time, so its handler can tell.
 *
 * @since 0.2.0
 */
import { type Duration, Effect } from "effect"
import type * as Actor from "./Actor.ts"
import { Broker } from "./Broker.ts"
import type { BrokerError, EnqueueVetoed } from "./ErrandError.ts"
import { actorOf, envelopeOf, toOutgoing } from "./internal/carrier.ts"
import { messageId } from "./internal/id.ts"
import { prepare } from "./internal/middleware.ts"
import type { Carried, GroupRef, Message } from "./Message.ts"
import type { Results as ResultsStore } from "./Results.ts"

/**
 * A group that was sent: its id and its members, in order.
 *
 * @category models
 * @since 0.2.0
 */
export interface Group<Members extends ReadonlyArray<Message<unknown, unknown>>> {
  readonly id: string
  readonly members: Members
}

/**
 * Options of `Group.run`: prebuilt messages (from `actor.message`) sent once when every member succeeded, or when
 * the first member failed for good.
 *
 * @category models
 * @since 0.2.0
 */
export interface Options {
  readonly onComplete?: Message<unknown, unknown> | undefined
  readonly onFailure?: Message<unknown, unknown> | undefined
}

/** The success type of a message. */
type SuccessOf<M> = M extends Message<unknown, infer S> ? S : never

/**
 * The members' results, in the members' order.
 *
 * @category models
 * @since 0.2.0
 */
export type Results<Members extends ReadonlyArray<Message<unknown, unknown>>> = {
  readonly [K in keyof Members]: SuccessOf<Members[K]>
}

const carried = (message: Message<unknown, unknown>): Carried => ({
  id: message.id,
  queue: message.queue,
  priority: message.priority,
  body: envelopeOf(message)
})

/**
 * Sends the members of a group (built with `actor.message`) in one broker call, with the group's callbacks. Returns
 * the group, for `Group.results`. Members' idempotency keys are not used (a member left out as a duplicate would never
 * complete its group); the group's callbacks are sent with keys of their own (see `Worker`), so each goes out once.
 *
 * @category sending
 * @since 0.2.0
 */
export const run = <const Members extends ReadonlyArray<Message<unknown, unknown>>>(
  members: Members,
  options?: Options
): Effect.Effect<Group<Members>, EnqueueVetoed | BrokerError, Broker> =>
  Effect.flatMap(prepare(members), ([prepared, broker]) => {
    const id = messageId()
    const group: { -readonly [K in keyof GroupRef]: GroupRef[K] } = { id, size: members.length }
    if (options?.onComplete !== undefined) group.onComplete = carried(options.onComplete)
    if (options?.onFailure !== undefined) group.onFailure = carried(options.onFailure)
    // a member's idempotency key is not used: a suppressed member would never complete its group
    const outgoing = prepared.map((member) => {
      const { key: _key, keyTtl: _keyTtl, ...envelope } = envelopeOf(member)
      const { key: _outKey, keyTtl: _outKeyTtl, ...rest } = toOutgoing(member)
      return { ...rest, body: { ...envelope, group } }
    })
    return Effect.as(broker.enqueue(outgoing), { id, members: prepared as unknown as Members })
  })

/**
 * The results of a group's members, in order, typed as each member's success (each member's actor must store
 * results: `storeResults`). Without `timeout`, reads what is there; with one, waits for every result. Fails with the
 * first failure met: a member's typed error, or `ResultMissing`, `ResultTimeout`, `MessageFailed`.
 *
 * @category results
 * @since 0.2.0
 */
export const results = <const Members extends ReadonlyArray<Message<unknown, unknown>>>(
  group: Group<Members>,
  options?: Actor.ResultOptions
): Effect.Effect<Results<Members>, unknown, ResultsStore> =>
  // members' schemas that need services to decode are not supported here: read those with `actor.result`
  Effect.forEach(
    group.members,
    (member) => actorOf(member).result(member.id, options),
    { concurrency: "unbounded" }
  ) as Effect.Effect<Results<Members>, unknown, ResultsStore>

/**
 * How long a group's record is kept in the broker after its last member's outcome.
 *
 * @category constants
 * @since 0.2.0
 */
export const recordTtl: Duration.Input = "7 days"
