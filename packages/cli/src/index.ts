/**
 * `@errand/cli`: the `errand` command (workers with `--processes`, schedules and admin commands), and what a worker
 * module uses: `defineWorker`, `runMain`.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export { defineWorker, type Recycle, type WorkerDefinition, type WorkerSettings } from "./WorkerModule.ts"

/** @since 0.1.0 */
export { runMain, teardown } from "./Main.ts"

/** @since 0.1.0 */
export * as CommandError from "./CommandError.ts"

/** @since 0.1.0 */
export * as WorkerModule from "./WorkerModule.ts"
