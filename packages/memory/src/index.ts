/**
 * Errand's in-memory broker: a real broker for tests and single-process apps.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as MemoryBroker from "./MemoryBroker.ts"

/** @since 0.2.0 */
export * as MemoryResults from "./MemoryResults.ts"
