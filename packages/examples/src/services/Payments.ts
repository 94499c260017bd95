/**
 * Payments: the payment provider, as the app sees it. The example's provider is a sandbox that keeps its ledger in
 * the app's database (the `payments` table) and, like a card network's test mode, declines charges above 1,000.00.
 * A production app puts its provider's SDK behind the same interface.
 */
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { randomUUID } from "node:crypto"
import { type DatabaseError, PaymentDeclined } from "../domain.ts"
import { dbError, now } from "./sql.ts"

/** The sandbox declines charges above this many cents. */
export const declineAboveCents = 100_000

/** A day's charges, for reconciliation. */
export interface Ledger {
  readonly payments: number
  readonly totalCents: number
  /** Charges (not refunded) whose order is not paid, reserved or confirmed. */
  readonly orphanPayments: ReadonlyArray<string>
  /** Orders marked paid (or later) with no charge. */
  readonly unpaidOrders: ReadonlyArray<number>
}

/** The payment provider. */
export class Payments extends Context.Service<Payments, {
  /** Charges an order once: a second charge of the same order returns the first payment's id (idempotent). */
  readonly charge: (orderId: number, amountCents: number) => Effect.Effect<string, PaymentDeclined | DatabaseError>
  /** Refunds an order's charge, if it has one. */
  readonly refund: (orderId: number) => Effect.Effect<void, DatabaseError>
  /** The charges made in `[from, to)`, checked against the orders. */
  readonly ledger: (from: Date, to: Date) => Effect.Effect<Ledger, DatabaseError>
}>()("@errand/examples/Payments") {}

/** The sandbox provider, on the SQL database. */
export const layerSandbox: Layer.Layer<Payments, never, SqlClient.SqlClient> = Layer.effect(
  Payments,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return Payments.of({
      charge: (orderId, amountCents) =>
        Effect.gen(function*() {
          if (amountCents > declineAboveCents) {
            return yield* new PaymentDeclined({ orderId, reason: "amount above the card's limit" })
          }
          const createdAt = yield* now
          const id = `pay_${randomUUID()}`
          const rows = yield* sql<{ readonly id: string }>`
            INSERT INTO payments (id, order_id, amount_cents, created_at)
            VALUES (${id}, ${orderId}, ${amountCents}, ${createdAt})
            ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id
            RETURNING id`.pipe(dbError("payments.charge"))
          return rows[0]?.id ?? id
        }),
      refund: (orderId) =>
        sql`UPDATE payments SET refunded = true WHERE order_id = ${orderId}`.pipe(
          dbError("payments.refund"),
          Effect.asVoid
        ),
      ledger: (from, to) =>
        Effect.gen(function*() {
          const totals = yield* sql<{ readonly payments: number; readonly totalCents: number }>`
            SELECT count(*)::int AS payments, coalesce(sum(amount_cents), 0)::int AS total_cents
            FROM payments WHERE NOT refunded AND created_at >= ${from} AND created_at < ${to}`
          const orphans = yield* sql<{ readonly id: string }>`
            SELECT p.id FROM payments p LEFT JOIN orders o ON o.id = p.order_id
            WHERE NOT p.refunded AND p.created_at >= ${from} AND p.created_at < ${to}
              AND (o.id IS NULL OR o.status NOT IN ('paid', 'reserved', 'confirmed'))
            ORDER BY p.id`
          const unpaid = yield* sql<{ readonly id: number }>`
            SELECT o.id FROM orders o LEFT JOIN payments p ON p.order_id = o.id AND NOT p.refunded
            WHERE o.status IN ('paid', 'reserved', 'confirmed') AND p.id IS NULL
              AND o.updated_at >= ${from} AND o.updated_at < ${to}
            ORDER BY o.id`
          return {
            payments: totals[0]?.payments ?? 0,
            totalCents: totals[0]?.totalCents ?? 0,
            orphanPayments: orphans.map((row) => row.id),
            unpaidOrders: unpaid.map((row) => row.id)
          }
        }).pipe(dbError("payments.ledger"))
    })
  })
)
