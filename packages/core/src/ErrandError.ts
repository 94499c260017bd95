/**
 * The tagged errors of Errand's core. Every error is a class with fields, never a string: match them with
 * `Effect.catchTag`, and read their fields in logs and dead-letter records.
 *
 * @since 0.1.0
 */
import { Schema, SchemaIssue } from "effect"

/**
 * A broker operation failed: the connection dropped, a script failed, or the broker was shut down.
 *
 * @category errors
 * @since 0.1.0
 */
export class BrokerError extends Schema.TaggedError<BrokerError>()("BrokerError", {
  /** The broker that failed, e.g. `"memory"` or `"redis"`. */
  broker: Schema.String,
  /** The operation that failed, e.g. `"enqueue"`, `"take"`, `"settle"`. */
  operation: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * A payload did not match its actor's schema when it was sent. `path` names the offending field
 * (e.g. `"userId"` or `"items.0.sku"`), and `issue` is Schema's full explanation.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  actor: Schema.String,
  /** The dotted path of the first invalid field; empty when the payload itself is wrong. */
  path: Schema.String,
  issue: Schema.String
}) {
  override get message(): string {
    return `Invalid payload for actor "${this.actor}"${this.path === "" ? "" : ` at "${this.path}"`}: ${this.issue}`
  }
}

/**
 * An actor or queue name is not valid. Names must match `[a-zA-Z_][a-zA-Z0-9._-]*` (Dramatiq's rule).
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidName extends Schema.TaggedError<InvalidName>()("InvalidName", {
  kind: Schema.Literals(["actor", "queue"]),
  name: Schema.String
}) {
  override get message(): string {
    return `Invalid ${this.kind} name "${this.name}": names must match [a-zA-Z_][a-zA-Z0-9._-]*`
  }
}

/**
 * Two handlers for the same actor name were registered in one worker.
 *
 * @category errors
 * @since 0.1.0
 */
export class DuplicateActor extends Schema.TaggedError<DuplicateActor>()("DuplicateActor", {
  actor: Schema.String
}) {
  override get message(): string {
    return `An actor named "${this.actor}" is already registered in this worker`
  }
}

/**
 * A message names an actor this worker has no handler for. The message is dead-lettered with this reason.
 *
 * @category errors
 * @since 0.1.0
 */
export class UnknownActor extends Schema.TaggedError<UnknownActor>()("UnknownActor", {
  actor: Schema.String,
  queue: Schema.String
}) {
  override get message(): string {
    return `No handler for actor "${this.actor}" on queue "${this.queue}"`
  }
}

/**
 * A message taken from the broker could not be decoded: the envelope is malformed, or the payload does not match the
 * actor's schema. The message is dead-lettered with this reason and never retried.
 *
 * @category errors
 * @since 0.1.0
 */
export class MessageDecodeError extends Schema.TaggedError<MessageDecodeError>()("MessageDecodeError", {
  messageId: Schema.String,
  /** What failed to decode: the envelope or the payload. */
  part: Schema.Literals(["envelope", "payload"]),
  issue: Schema.String
}) {
  override get message(): string {
    return `Cannot decode the ${this.part} of message ${this.messageId}: ${this.issue}`
  }
}

/**
 * A handler ran past its actor's `timeLimit`. Its fiber was interrupted, and the attempt counts as failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class TimeLimitExceeded extends Schema.TaggedError<TimeLimitExceeded>()("TimeLimitExceeded", {
  actor: Schema.String,
  messageId: Schema.String,
  timeLimitMillis: Schema.Number
}) {
  override get message(): string {
    return `Actor "${this.actor}" exceeded its time limit of ${this.timeLimitMillis} ms on message ${this.messageId}`
  }
}

/**
 * A message waited longer than its actor's `maxAge` after it became due. It is dead-lettered without running.
 *
 * @category errors
 * @since 0.1.0
 */
export class MaxAgeExceeded extends Schema.TaggedError<MaxAgeExceeded>()("MaxAgeExceeded", {
  actor: Schema.String,
  messageId: Schema.String,
  ageMillis: Schema.Number,
  maxAgeMillis: Schema.Number
}) {
  override get message(): string {
    return `Message ${this.messageId} of actor "${this.actor}" is ${this.ageMillis} ms past due, over its max age of ${this.maxAgeMillis} ms`
  }
}

/**
 * A handler died with a defect (a thrown exception, `Effect.die`, or an interruption it caused itself). The attempt
 * counts as failed and is retried like a typed error.
 *
 * @category errors
 * @since 0.1.0
 */
export class HandlerDefect extends Schema.TaggedError<HandlerDefect>()("HandlerDefect", {
  actor: Schema.String,
  messageId: Schema.String,
  /** A readable rendering of the defect. */
  defect: Schema.String
}) {
  override get message(): string {
    return `Actor "${this.actor}" died on message ${this.messageId}: ${this.defect}`
  }
}

/** @internal */
export const issuePath = (issue: SchemaIssue.Issue): string => {
  const first = SchemaIssue.makeFormatterStandardSchemaV1()(issue).issues[0]
  return first === undefined ? "" : (first.path ?? []).map((key) => String(key)).join(".")
}

/**
 * A schedule is invalid: its cron expression or time zone does not parse, its name is not valid, two schedules share
 * a name, or its payload does not match its actor's schema.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidSchedule extends Schema.TaggedError<InvalidSchedule>()("InvalidSchedule", {
  /** The schedule's name. */
  schedule: Schema.String,
  problem: Schema.String
}) {
  override get message(): string {
    return `Invalid schedule "${this.schedule}": ${this.problem}`
  }
}
