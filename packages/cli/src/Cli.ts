/**
 * The `errand` command: `errand worker MODULE`, and the admin commands, on `effect/cli`.
 *
 * Exit codes are listed in `CommandError`.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { ErrandError, Heartbeat, Schedules, Worker } from "@errand/core"
import { Cause, Clock, Config, Effect, Exit, Layer, Option, Runtime } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import { hostname } from "node:os"
import { ExitCode, InvalidInput, ModuleLoadError } from "./CommandError.ts"
import { deadLetters, enqueue, print, queues, table } from "./internal/admin.ts"
import { brokerFlags, brokerLayer, describe } from "./internal/brokerFlags.ts"
import { dashboard } from "./internal/dashboard.ts"
import { optionalDuration } from "./internal/duration.ts"
import { loadWorker } from "./internal/load.ts"
import { loggerLayer, observe, portOf } from "./internal/monitoring.ts"
import { childEnv, ChildFatal, type RecycleMessage, supervise } from "./internal/supervisor.ts"
import type { Recycle, WorkerSettings } from "./WorkerModule.ts"

const version = "0.1.0"

const csv = (value: string) => value.split(",").map((part) => part.trim()).filter((part) => part.length > 0)

// ---- errand worker ----

const workerFlags = {
  module: Argument.String("module").pipe(
    Argument.withDescription("The worker module: a .ts/.js file whose default export is defineWorker({...})")
  ),
  queues: Flag.String("queues").pipe(
    Flag.withAlias("Q"),
    Flag.withDescription(describe("Comma-separated queues to consume", { default: "the module's, else its actors'" })),
    Flag.optional
  ),
  concurrency: Flag.Int("concurrency").pipe(
    Flag.withAlias("c"),
    Flag.withDescription(
      describe("Handlers running at once, per process", { default: `the module's, else ${Worker.defaultConcurrency}` })
    ),
    Flag.optional
  ),
  prefetch: Flag.Int("prefetch").pipe(
    Flag.withDescription(describe("Messages taken ahead of free handler slots", { default: "concurrency" })),
    Flag.optional
  ),
  processes: Flag.Int("processes").pipe(
    Flag.withAlias("p"),
    Flag.withDescription(describe("Worker processes; above 1, a supervisor forks and restarts them", {
      default: "1"
    })),
    Flag.withDefault(1)
  ),
  shutdownTimeout: Flag.String("shutdown-timeout").pipe(
    Flag.withDescription(describe("How long a stop lets running handlers finish before releasing them", {
      default: "the module's, else 30s"
    })),
    Flag.optional
  ),
  lease: Flag.String("lease").pipe(
    Flag.withDescription(describe("How long a message's lease lasts; extended every third of it", {
      default: "the module's, else 30s"
    })),
    Flag.optional
  ),
  maxMessages: Flag.Int("max-messages").pipe(
    Flag.withDescription(describe("Recycle a worker process after it finished this many messages (supervised)", {
      default: "never"
    })),
    Flag.optional
  ),
  maxRss: Flag.Int("max-rss").pipe(
    Flag.withDescription(describe("Recycle a worker process whose resident memory goes above this many MB", {
      default: "never"
    })),
    Flag.optional
  ),
  metricsPort: Flag.Int("metrics-port").pipe(
    Flag.withDescription(describe(
      "Serve /metrics (Prometheus), /healthz and /readyz on this port; with --processes N, child i serves port+i-1",
      { default: "no server", env: "ERRAND_METRICS_PORT" }
    )),
    Flag.withFallbackConfig(Config.Int("ERRAND_METRICS_PORT")),
    Flag.optional
  ),
  metricsHost: Flag.String("metrics-host").pipe(
    Flag.withDescription(describe("The address the metrics server listens on", { default: "0.0.0.0" })),
    Flag.withDefault("0.0.0.0")
  ),
  tracesUrl: Flag.String("traces-url").pipe(
    Flag.withDescription(describe(
      "Trace sends and attempts (Tracing.layer) and export the spans with OTLP/HTTP JSON to this URL",
      { default: "no tracing", env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" }
    )),
    Flag.withFallbackConfig(Config.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
    Flag.optional
  ),
  logFormat: Flag.Literals("log-format", ["pretty", "json"]).pipe(
    Flag.withDescription(describe("Log lines as JSON objects, one per line, or pretty", {
      default: "pretty in a terminal"
    })),
    Flag.optional
  ),
  noSchedules: Flag.Boolean("no-schedules").pipe(
    Flag.withDescription(describe("Do not run the module's cron schedules in this worker", { default: "false" })),
    Flag.withDefault(false)
  ),
  noHeartbeat: Flag.Boolean("no-heartbeat").pipe(
    Flag.withDescription(describe(
      "Do not report this worker to the broker every 5 s (the dashboard lists workers and throughput from it)",
      { default: "false" }
    )),
    Flag.withDefault(false)
  ),
  ...brokerFlags
}

/** Counts the children that did not stop cleanly, for the exit code. */
const shutdown = { failures: 0 }

const worker = Command.make("worker", workerFlags, (flags) =>
  Effect.gen(function*() {
    if (flags.processes < 1) {
      return yield* new InvalidInput({ input: "--processes", problem: `must be at least 1 (got ${flags.processes})` })
    }
    const settings: WorkerSettings = {
      queues: Option.getOrUndefined(Option.map(flags.queues, csv)),
      concurrency: Option.getOrUndefined(flags.concurrency),
      prefetch: Option.getOrUndefined(flags.prefetch),
      shutdownTimeout: yield* optionalDuration("--shutdown-timeout", flags.shutdownTimeout),
      lease: yield* optionalDuration("--lease", flags.lease),
      runSchedules: flags.noSchedules ? false : undefined
    }
    const definition = yield* loadWorker(flags.module)
    const broker = brokerLayer(flags)
    const child = process.env[childEnv]
    const recycles = Option.isSome(flags.maxMessages) || Option.isSome(flags.maxRss)
    if ((flags.processes > 1 || recycles) && child === undefined) {
      if (flags.broker === "memory") {
        return yield* new InvalidInput({
          input: flags.processes > 1 ? "--processes" : "--max-messages/--max-rss",
          problem: "the memory broker lives in one process: use --broker redis for supervised worker processes"
        })
      }
      // The broker must be reachable before any child starts: a wrong URL is one clear error, not N restarts.
      yield* Effect.scoped(Layer.build(broker))
      return yield* supervise({
        processes: flags.processes,
        script: process.argv[1]!,
        args: process.argv.slice(2),
        execArgv: process.execArgv
      }, shutdown)
    }
    if (child !== undefined) {
      // The supervisor is gone (killed): stop gracefully rather than run unsupervised.
      process.on("disconnect", () => process.kill(process.pid, "SIGTERM"))
    }
    const recycle: Recycle | undefined = child === undefined || !recycles ? undefined : {
      afterMessages: Option.getOrUndefined(flags.maxMessages),
      aboveRssBytes: Option.getOrUndefined(Option.map(flags.maxRss, (mb) => mb * 2 ** 20)),
      onRecycle: (reason) =>
        Effect.andThen(
          Effect.logInfo(`Recycling this worker process: ${reason}`),
          Effect.sync(() => {
            process.send?.({ _tag: "Recycle", reason } satisfies RecycleMessage)
            process.kill(process.pid, "SIGTERM") // the graceful stop: running handlers finish, the rest is released
          })
        )
    }
    const consumed = settings.queues ?? definition.settings.queues ??
      [...new Set(definition.handlers.map((handler) => handler.actor.queue))]
    const runsSchedules = !flags.noSchedules && definition.settings.runSchedules !== false
    const reported = flags.noHeartbeat
      ? definition.layer(settings, recycle)
      : definition.layer(settings, recycle).pipe(
        Layer.provide(Heartbeat.layer({
          queues: consumed,
          schedules: runsSchedules ? definition.schedules : [],
          host: hostname()
        }))
      )
    const workerLayer = observe(reported, {
      metrics: Option.getOrUndefined(Option.map(flags.metricsPort, (base) => ({
        host: flags.metricsHost,
        port: portOf(base, child),
        queues: consumed
      }))),
      tracesUrl: Option.getOrUndefined(flags.tracesUrl)
    })
    return yield* Layer.launch(workerLayer).pipe(
      Effect.provide(broker),
      Effect.mapError((error) =>
        error instanceof ErrandError.DuplicateActor || error instanceof ErrandError.InvalidName
          ? new ModuleLoadError({ path: flags.module, problem: error.message })
          : error
      ),
      child === undefined ? (effect) => effect : Effect.annotateLogs({ process: child })
    )
  }).pipe(Effect.provide(loggerLayer(Option.getOrUndefined(flags.logFormat))))).pipe(
    Command.withDescription(
      "Run a worker: the handlers of MODULE's defineWorker on the broker, until SIGINT/SIGTERM (then it drains and " +
        "exits 0). Like rundramatiq."
    )
  )

// ---- errand schedules ----

const schedules = Command.make("schedules", {
  module: Argument.String("module").pipe(Argument.withDescription("The worker module")),
  count: Flag.Int("count").pipe(
    Flag.withDescription(describe("How many next runs to show per schedule", { default: "3" })),
    Flag.withDefault(3)
  ),
  json: Flag.Boolean("json").pipe(
    Flag.withDescription(describe("Print JSON instead of a table", { default: "false" })),
    Flag.withDefault(false)
  )
}, (flags) =>
  Effect.gen(function*() {
    const definition = yield* loadWorker(flags.module)
    const compiled = yield* Schedules.compile(definition.schedules).pipe(
      Effect.mapError((error) => new ModuleLoadError({ path: flags.module, problem: error.message }))
    )
    const now = yield* Clock.currentTimeMillis
    const rows = compiled.map((schedule) => ({
      name: schedule.entry.name,
      actor: schedule.entry.actor.name,
      queue: schedule.entry.actor.queue,
      cron: schedule.entry.cron,
      tz: schedule.entry.tz ?? "UTC",
      next: Schedules.nextSlots(schedule, now, flags.count).map((date) => date.toISOString())
    }))
    yield* print(flags.json, rows, () =>
      rows.length === 0
        ? `${flags.module} defines no schedules.`
        : table(
          ["SCHEDULE", "ACTOR", "QUEUE", "CRON", "TZ", "NEXT RUNS"],
          rows.map((row) => [row.name, row.actor, row.queue, row.cron, row.tz, row.next.join(", ")])
        ))
  })).pipe(Command.withDescription("List the module's cron schedules and their next runs (UTC)"))

// ---- the command ----

/**
 * The `errand` command and its subcommands.
 *
 * @category commands
 * @since 0.1.0
 */
export const command = Command.make("errand").pipe(
  Command.withDescription("Errand: run workers and schedules, inspect queues and dead letters, serve the dashboard"),
  Command.withSubcommands([worker, queues, deadLetters, enqueue, schedules, dashboard])
)

/** Exit codes: a parse error is a usage error (2); an interrupted run (SIGINT/SIGTERM) is a clean stop (0). */
const cliTeardown: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit)) return onExit(ExitCode.Ok)
  if (Cause.hasInterruptsOnly(exit.cause)) return onExit(shutdown.failures > 0 ? ExitCode.Failure : ExitCode.Ok)
  const error = Cause.squash(exit.cause)
  if (error instanceof ChildFatal) return onExit(error.code)
  if (CliError.isCliError(error) && error._tag !== "UserError") {
    return onExit(error._tag === "ShowHelp" && error.errors.length === 0 ? ExitCode.Ok : ExitCode.Usage)
  }
  return Runtime.defaultTeardown(exit, onExit)
}

/**
 * Runs the `errand` command with the process's arguments.
 *
 * @category running
 * @since 0.1.0
 */
export const main = (): void =>
  Command.run(command, { version }).pipe(
    Effect.provide(NodeServices.layer),
    NodeRuntime.runMain({ teardown: cliTeardown })
  )
