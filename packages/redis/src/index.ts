/**
 * Errand's Redis broker.
 *
 * @since 0.1.0
 */
export {}
