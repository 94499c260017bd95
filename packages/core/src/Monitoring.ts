/**
 * Monitoring routes for an HTTP server: `/metrics` (Prometheus text format, from `effect/observability`'s
 * `PrometheusMetrics`), `/healthz` (the process is alive) and `/readyz` (the broker answers within a timeout, and the
 * worker is taking). They are `effect/http` routes: add them to your own server, or let `errand worker --metrics-port`
 * serve them.
 *
 * ```ts
 * import { createServer } from "node:http"
 * import { NodeHttpServer } from "@effect/platform-node"
 * import { HttpRouter } from "effect/http"
 *
 * const MonitoringLive = HttpRouter.serve(Monitoring.routes({ queues: ["email"] })).pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 9191 }))
 * ) // Layer<never, ServeError, Broker>: merge it with your worker layer
 * ```
 *
 * @since 0.2.0
 */
import { type Duration, Effect, Layer, Metric } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { Broker } from "./Broker.ts"
import type { InvalidOption } from "./ErrandError.ts"
import * as Check from "./internal/options.ts"

/**
 * The options of `Monitoring.routes`.
 *
 * @category models
 * @since 0.2.0
 */
export interface Options {
  /** The queue `/readyz` asks the broker about (`stats`, a cheap call); default `"default"`. */
  readonly queues?: ReadonlyArray<string> | undefined
  /** How long `/readyz` waits for the broker before answering 503 (default 2 seconds). */
  readonly probeTimeout?: Duration.Input | undefined
  /**
   * Whether the worker is taking messages (it started and is not shutting down); `/readyz` answers 503 when it is
   * not. Default: not checked (a producer's readiness is its broker's).
   */
  readonly taking?: (() => boolean) | undefined
}

/** What `/readyz` answers, as JSON. */
interface Readiness {
  readonly ready: boolean
  readonly broker: "ok" | "unreachable"
  readonly worker: "taking" | "stopped" | "not checked"
}

/**
 * The `/metrics`, `/healthz` and `/readyz` routes. `/metrics` serves the metrics of the `Metric.MetricRegistry` the
 * layer is built with (the default one unless you provide another).
 *
 * @category layers
 * @since 0.2.0
 */
export const routes = (options: Options = {}): Layer.Layer<never, InvalidOption, HttpRouter.HttpRouter | Broker> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const timeout = Check.duration("monitoring", "probeTimeout", options.probeTimeout, 2_000, 1, false)
    if (typeof timeout !== "number") return yield* Effect.fail(timeout)
    const router = yield* HttpRouter.HttpRouter
    const broker = yield* Broker
    const registry = yield* Metric.MetricRegistry
    const queue = options.queues?.[0] ?? "default"
    const taking = options.taking

    yield* router.add(
      "GET",
      "/metrics",
      Effect.map(
        Effect.provideService(PrometheusMetrics.format(), Metric.MetricRegistry, registry),
        (body) => HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
      )
    )
    yield* router.add("GET", "/healthz", HttpServerResponse.jsonUnsafe({ alive: true }))
    yield* router.add(
      "GET",
      "/readyz",
      Effect.map(
        broker.stats(queue).pipe(
          Effect.timeout(timeout),
          Effect.match({ onFailure: () => false, onSuccess: () => true })
        ),
        (reachable) => {
          const worker = taking === undefined ? "not checked" : taking() ? "taking" : "stopped"
          const readiness: Readiness = {
            ready: reachable && worker !== "stopped",
            broker: reachable ? "ok" : "unreachable",
            worker
          }
          return HttpServerResponse.jsonUnsafe(readiness, { status: readiness.ready ? 200 : 503 })
        }
      )
    )
  }))
