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
 * `applied` says whether the operation may have taken effect anyway: `"no"` when it certainly did not (it was refused
 * before it reached the backend, or the backend answered with an error), `"unknown"` when the outcome is unknown (the
 * connection dropped after the command was written, or no reply came in time). A failed `send` whose error says
 * `"unknown"` may have enqueued its message: sending it again may run it twice (an idempotency key prevents that).
 * Absent when the broker does not say (treat it as `"unknown"`).
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
  /** Whether the operation may have been applied: `"no"`, or `"unknown"` (see above). @since 0.2.0 */
  applied: Schema.optional(Schema.Literals(["no", "unknown"])),
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
 * An option of an actor, a send, or a worker is out of range or malformed (a priority of 1.5, a delay of `Infinity`,
 * a concurrency of 0, a lease of 0). Nothing was sent or started. `Actor.make` throws it, like `InvalidName`; `send`
 * and `Worker.make` fail with it.
 *
 * @category errors
 * @since 0.2.0
 */
export class InvalidOption extends Schema.TaggedError<InvalidOption>()("InvalidOption", {
  /**
   * Whose option it is: an actor's, a send's, a worker's, `actor.result`'s (`result`), `Retry.later`'s (`retry`), or
   * the metrics and health layers' (`monitoring`).
   */
  of: Schema.Literals(["actor", "send", "worker", "result", "retry", "monitoring"]),
  /** The option's name, e.g. `"priority"`. */
  option: Schema.String,
  /** The value given, rendered for reading. */
  value: Schema.String,
  /** What the option accepts. */
  expected: Schema.String
}) {
  override get message(): string {
    return `Invalid ${this.of} option "${this.option}": ${this.value} (expected ${this.expected})`
  }
}

/**
 * A message lost its lease more often than the worker's `maxLostLeases` allows: each time it was taken, its worker
 * stopped extending the lease without settling it (the process died or froze — a handler that blocks the event loop
 * with a synchronous loop does this). It is dead-lettered unrun, so one poison message cannot take down a fleet.
 *
 * @category errors
 * @since 0.2.0
 */
export class DeliveryLimitExceeded extends Schema.TaggedError<DeliveryLimitExceeded>()("DeliveryLimitExceeded", {
  messageId: Schema.String,
  queue: Schema.String,
  /** Leases that lapsed without an outcome. */
  lostLeases: Schema.Number,
  maxLostLeases: Schema.Number
}) {
  override get message(): string {
    return `Message ${this.messageId} on queue "${this.queue}" lost its lease ${this.lostLeases} times ` +
      `(limit ${this.maxLostLeases}): a handler that freezes or crashes its worker is not run again`
  }
}

/**
 * `actor.result(message)` found no result: the message has not finished yet, its result expired, or its actor does
 * not store results (`storeResults`).
 *
 * @category errors
 * @since 0.2.0
 */
export class ResultMissing extends Schema.TaggedError<ResultMissing>()("ResultMissing", {
  actor: Schema.String,
  messageId: Schema.String
}) {
  override get message(): string {
    return `No result for message ${this.messageId} of actor "${this.actor}" (not finished, expired, or not stored)`
  }
}

/**
 * `actor.result(message, { timeout })` waited `timeoutMillis` and no result was written.
 *
 * @category errors
 * @since 0.2.0
 */
export class ResultTimeout extends Schema.TaggedError<ResultTimeout>()("ResultTimeout", {
  actor: Schema.String,
  messageId: Schema.String,
  timeoutMillis: Schema.Number
}) {
  override get message(): string {
    return `No result for message ${this.messageId} of actor "${this.actor}" within ${this.timeoutMillis} ms`
  }
}

/**
 * The result of a message that failed for good without a typed error: it ran past its time limit, died with a
 * defect, was too old, or could not be decoded. `tag` and `reason` are those of its dead letter.
 *
 * @category errors
 * @since 0.2.0
 */
export class MessageFailed extends Schema.TaggedError<MessageFailed>()("MessageFailed", {
  actor: Schema.String,
  messageId: Schema.String,
  /** The tag of the failure, e.g. `"TimeLimitExceeded"` or `"HandlerDefect"`. */
  tag: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Message ${this.messageId} of actor "${this.actor}" failed: [${this.tag}] ${this.reason}`
  }
}

/**
 * A stored result could not be decoded with the actor's `success` or `error` schema (the schema changed since it was
 * stored, or another producer wrote it).
 *
 * @category errors
 * @since 0.2.0
 */
export class ResultDecodeError extends Schema.TaggedError<ResultDecodeError>()("ResultDecodeError", {
  actor: Schema.String,
  messageId: Schema.String,
  issue: Schema.String
}) {
  override get message(): string {
    return `Cannot decode the result of message ${this.messageId} of actor "${this.actor}": ${this.issue}`
  }
}

/**
 * A handler asks to be run again after `delayMillis` (`Retry.later("30 seconds")`): the attempt counts against the
 * actor's retry limit, but is neither a failure to log as an error nor subject to `retryWhen` or the backoff.
 *
 * @category errors
 * @since 0.2.0
 */
export class RetryLater extends Schema.TaggedError<RetryLater>()("RetryLater", {
  delayMillis: Schema.Number
}) {
  override get message(): string {
    return `The handler asked to be retried in ${this.delayMillis} ms`
  }
}

/**
 * A message handed to a broker's `enqueue` has an id outside the grammar (see `Message.isMessageId`): 1 to 255
 * printable ASCII characters other than `"` and `\`. Nothing of its batch is enqueued; the broker fails with a
 * `BrokerError` (operation `"enqueue"`) whose `cause` is this error. Ids made by `send` always satisfy the grammar, so
 * only a producer that builds `Broker.Outgoing` messages itself can meet it.
 * A schedule is invalid: its cron expression or time zone does not parse, its name is not valid, two schedules share
 * a name, or its payload does not match its actor's schema.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidMessageId extends Schema.TaggedError<InvalidMessageId>()("InvalidMessageId", {
  /** The refused id (`String(id)` when it was not a string). */
  messageId: Schema.String,
  queue: Schema.String
}) {
  override get message(): string {
    return `Invalid message id ${
      JSON.stringify(this.messageId)
    } on queue "${this.queue}": ids are 1 to 255 printable ` +
      "ASCII characters other than '\"' and '\\'"
  }

  /**
   * The `BrokerError` a broker's `enqueue` fails with for a batch holding `message`, whose id is invalid (for adapter
   * authors: every broker refuses alike, as the conformance suite checks).
   */
  static refuse(
    broker: string,
    message: { readonly id: unknown; readonly queue: string },
    operation = "enqueue"
  ): BrokerError {
    const cause = new InvalidMessageId({ messageId: String(message.id), queue: message.queue })
    return new BrokerError({ broker, operation, message: cause.message, applied: "no", cause })
  }
}

/**
 * A middleware's `beforeEnqueue` refused a message: nothing of its batch was enqueued.
 *
 * @category errors
 * @since 0.2.0
 */
export class EnqueueVetoed extends Schema.TaggedError<EnqueueVetoed>()("EnqueueVetoed", {
  /** The middleware that refused it. */
  middleware: Schema.String,
  messageId: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Middleware "${this.middleware}" refused message ${this.messageId}: ${this.reason}`
  }
}

/**
 * A schedule is invalid: its cron expression or time zone does not parse, its name is not valid, two schedules share
 * a name, or its payload does not match its actor's schema.
 *
 * @category errors
 * @since 0.2.0
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
