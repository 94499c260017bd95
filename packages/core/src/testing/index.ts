/**
 * Test helpers for Errand's adapter authors.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as BrokerConformance from "./BrokerConformance.ts"

/** @since 0.2.0 */
export * as ResultsConformance from "./ResultsConformance.ts"
