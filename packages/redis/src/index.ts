/**
 * Errand's Redis broker.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as RedisBroker from "./RedisBroker.ts"

/** @since 0.2.0 */
export * as RedisResults from "./RedisResults.ts"
