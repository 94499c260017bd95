/**
 * A message built by `actor.message`/`send` carries its encoded envelope, so that it can be enqueued later (by
 * `Actor.enqueue`, `Pipeline.run`, `Group.run`) without encoding its payload again.
 *
 * @internal
 */
import type { Duration, Effect } from "effect"
import type { Enqueued, Limits, Outgoing } from "../Broker.ts"
import type { Envelope, Message, Target } from "../Message.ts"

/** @internal */
export const ENVELOPE = Symbol.for("@errand/core/Actor/envelope")

/** @internal */
export const ACTOR = Symbol.for("@errand/core/Actor/actor")

/** @internal */
export const LIMITS = Symbol.for("@errand/core/Actor/limits")

/**
 * What a message built by an actor carries besides its fields: its encoded envelope, and the actor itself (to read
 * its result later, `Group.results`).
 *
 * @internal
 */
export interface EnvelopeCarrier {
  readonly [ENVELOPE]?: Envelope
  readonly [ACTOR]?: ResultReader
  /** The broker-enforced limits of the message, from its actor's `rateLimit` and `concurrency`. */
  readonly [LIMITS]?: Limits
}

/** The part of an actor that reads a result. @internal */
export interface ResultReader {
  readonly result: (message: string, options?: { readonly timeout?: Duration.Input | undefined }) => Effect.Effect<
    unknown,
    unknown,
    unknown
  >
}

/**
 * The actor of a message; throws for a message not built by an actor (a programming error).
 *
 * @internal
 */
export const actorOf = (message: Message): ResultReader => {
  const actor = (message as EnvelopeCarrier)[ACTOR]
  if (actor === undefined) {
    throw new globalThis.Error(`Message ${message.id} was not built by an actor's send or message`)
  }
  return actor
}

/**
 * The envelope a message carries; throws for a message not built by an actor (a programming error).
 *
 * @internal
 */
export const envelopeOf = (message: Message): Envelope => {
  const envelope = (message as EnvelopeCarrier)[ENVELOPE]
  if (envelope === undefined) {
    throw new globalThis.Error(`Message ${message.id} was not built by an actor's send or message`)
  }
  return envelope
}

/** The message a send returns: itself, or, when its key was held, marked `duplicate` with the holder's id. */
export const heldBy = <M extends Message>(message: M, enqueued: Enqueued): M => {
  if (enqueued.duplicates.size === 0) return message
  const holder = enqueued.duplicates.get(message.id)
  return holder === undefined ? message : { ...message, id: holder, duplicate: true }
}

/** @internal */
export const toOutgoing = (message: Message): Outgoing => {
  const envelope = envelopeOf(message)
  const limits = (message as EnvelopeCarrier)[LIMITS]
  const { eta, priority, queue } = message
  if (envelope.key === undefined) {
    const outgoing = { id: message.id, queue, priority, eta, body: envelope }
    return limits === undefined ? outgoing : { ...outgoing, limits }
  }
  // the envelope's id: a message marked `duplicate` carries the holder's id, but enqueueing it again resends itself
  const keyed = { id: envelope.id, queue, priority, eta, body: envelope, key: envelope.key, keyTtl: envelope.keyTtl }
  return limits === undefined ? keyed : { ...keyed, limits }
}

/**
 * Where a follow-up for an actor goes (a callback or a pipeline step).
 *
 * @internal
 */
export const toTarget = (
  receiver: { readonly name: string; readonly queue: string; readonly priority: number }
): Target =>
  receiver.priority === 0
    ? { actor: receiver.name, queue: receiver.queue }
    : { actor: receiver.name, queue: receiver.queue, priority: receiver.priority }
