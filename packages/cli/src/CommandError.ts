/**
 * The errors of the `errand` command, each with the exit code it ends the process with and a message for the user
 * (printed without a stack trace: these are user mistakes or an unreachable broker, not bugs).
 *
 * | exit code | meaning                                                                                  |
 * | --------- | ---------------------------------------------------------------------------------------- |
 * | 0         | success; a worker or supervisor stopped cleanly by SIGINT/SIGTERM                         |
 * | 1         | an unexpected failure (a bug: the cause is printed in full)                              |
 * | 2         | bad flags or arguments, or invalid input (`--payload` that is not valid JSON or fails the schema) |
 * | 3         | the module could not be loaded: it throws at import, or exports no worker definition     |
 * | 4         | the broker cannot be used: invalid URL, unreachable, or `REDIS_URL` missing               |
 * | 130       | forced stop: a second SIGINT/SIGTERM before the graceful stop finished                   |
 *
 * @since 0.1.0
 */
import { Runtime, Schema } from "effect"
import { CliError } from "effect/cli"

/**
 * Exit codes of the `errand` command.
 *
 * @category models
 * @since 0.1.0
 */
export const ExitCode = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
  BadModule: 3,
  BrokerUnavailable: 4,
  Forced: 130
} as const

/**
 * The module given to a command could not be loaded: it threw while being imported, or its exports are not what the
 * command needs.
 *
 * @category errors
 * @since 0.1.0
 */
export class ModuleLoadError extends Schema.TaggedError<ModuleLoadError>()("ModuleLoadError", {
  /** The module's path as given. */
  path: Schema.String,
  /** What is wrong, including the module's own error message when it threw. */
  problem: Schema.String
}) {
  override get message(): string {
    return `Cannot load the worker module ${this.path}: ${this.problem}`
  }
  override get [CliError.userMessage](): string {
    return this.message
  }
  override readonly [Runtime.errorExitCode] = ExitCode.BadModule
}

/**
 * The broker could not be built or reached.
 *
 * @category errors
 * @since 0.1.0
 */
export class BrokerUnavailable extends Schema.TaggedError<BrokerUnavailable>()("BrokerUnavailable", {
  /** `"redis"` or `"memory"`. */
  broker: Schema.String,
  problem: Schema.String
}) {
  override get message(): string {
    return `Cannot use the ${this.broker} broker: ${this.problem}`
  }
  override get [CliError.userMessage](): string {
    return this.message
  }
  override readonly [Runtime.errorExitCode] = ExitCode.BrokerUnavailable
}

/**
 * An argument's value is invalid: a payload that is not JSON or does not match its actor's schema, an unknown actor,
 * a bad duration.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  /** The flag or argument, e.g. `"--payload"`. */
  input: Schema.String,
  problem: Schema.String
}) {
  override get message(): string {
    return `Invalid ${this.input}: ${this.problem}`
  }
  override get [CliError.userMessage](): string {
    return this.message
  }
  override readonly [Runtime.errorExitCode] = ExitCode.Usage
}
