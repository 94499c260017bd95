/**
 * Running a worker program the README's way (`Layer.launch(...)` under `runMain`), with SIGINT/SIGTERM as a clean
 * stop: exit code 0, not 130.
 *
 * ```ts
 * import { runMain } from "@errand/cli"
 *
 * Layer.launch(WorkerLive).pipe(Effect.provide([RedisBroker.layerConfig(), UsersLive]), runMain)
 * ```
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, type Effect, Exit, Runtime } from "effect"

/**
 * A `Runtime.Teardown` for workers: a program interrupted (by SIGINT/SIGTERM under `runMain`) after it finished its
 * finalizers exits 0; any other failure exits as `Runtime.defaultTeardown` says. Pass it to
 * `NodeRuntime.runMain({ teardown })` when you call `runMain` yourself.
 *
 * @category runtime
 * @since 0.1.0
 */
export const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

/**
 * `NodeRuntime.runMain` with `teardown`: runs a program until it ends or SIGINT/SIGTERM interrupts it, then exits
 * 0 on a clean stop.
 *
 * @category runtime
 * @since 0.1.0
 */
export const runMain = <A, E>(effect: Effect.Effect<A, E>): void => NodeRuntime.runMain(effect, { teardown })
