/**
 * `errand dashboard`: the web dashboard (`@errand/dashboard`) on a server of its own, for the broker the flags name.
 *
 * @internal
 */
import { Dashboard } from "@errand/dashboard"
import { Config, Effect, Layer, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { InvalidInput } from "../CommandError.ts"
import { brokerFlags, brokerLayer, describe } from "./brokerFlags.ts"

/** The flag of each dashboard option. */
const flagOf: Record<string, string> = { host: "--host", port: "--port", token: "--token", prefix: "--path-prefix" }

export const dashboard = Command.make("dashboard", {
  port: Flag.Int("port").pipe(
    Flag.withDescription(describe("The port to listen on (0: a free one)", { default: "8080" })),
    Flag.withDefault(8080)
  ),
  host: Flag.String("host").pipe(
    Flag.withDescription(
      describe("The address to listen on; beyond loopback, --token or --read-only is required", {
        default: "127.0.0.1"
      })
    ),
    Flag.withDefault("127.0.0.1")
  ),
  token: Flag.Redacted("token").pipe(
    Flag.withDescription(describe("The token actions (requeue, delete) need, at least 8 characters", {
      default: "none",
      env: "ERRAND_DASHBOARD_TOKEN"
    })),
    Flag.withFallbackConfig(Config.Redacted("ERRAND_DASHBOARD_TOKEN")),
    Flag.optional
  ),
  readOnly: Flag.Boolean("read-only").pipe(
    Flag.withDescription(describe("Show everything, allow no action", { default: "false" })),
    Flag.withDefault(false)
  ),
  prefix: Flag.String("path-prefix").pipe(
    Flag.withDescription(describe("Serve under this path, e.g. /errand (behind a reverse proxy)", {
      default: "the root"
    })),
    Flag.optional
  ),
  ...brokerFlags
}, (flags) =>
  Layer.launch(
    Dashboard.serve({
      host: flags.host,
      port: flags.port,
      token: Option.getOrUndefined(flags.token),
      readOnly: flags.readOnly,
      prefix: Option.getOrUndefined(flags.prefix)
    })
  ).pipe(
    Effect.catchTag("InvalidDashboardOptions", (error) =>
      Effect.fail(new InvalidInput({ input: flagOf[error.option] ?? error.option, problem: error.problem }))),
    Effect.provide(brokerLayer(flags))
  )).pipe(
    Command.withDescription(
      "Serve the web dashboard: queues, throughput, workers, dead letters (requeue, delete) and schedules"
    )
  )
