/**
 * Test helpers for Errand's adapter authors.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as BrokerConformance from "./BrokerConformance.ts"
