/**
 * Orders and the products they take from stock: placing an order (the web side), then the pipeline's steps — pay,
 * reserve stock, confirm — each one transaction that is safe to run twice, and safe under concurrent workers.
 */
import { Array as Arr, Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import {
  type DatabaseError,
  InvalidOrderState,
  type Order,
  type OrderItem,
  OrderNotFound,
  type OrderStatus,
  OutOfStock,
  type PaymentDeclined,
  type Product,
  ProductNotFound,
  UserNotFound
} from "../domain.ts"
import { Payments } from "./Payments.ts"
import { dbError, now, sqlError } from "./sql.ts"

/** A line of a new order. */
export interface NewItem {
  readonly sku: string
  readonly quantity: number
}

/** A product to add to the catalog. */
export interface NewProduct {
  readonly sku: string
  readonly name: string
  readonly priceCents: number
  readonly stock: number
}

/** Orders, and products with their stock. */
export class Orders extends Context.Service<Orders, {
  readonly addProduct: (product: NewProduct) => Effect.Effect<Product, DatabaseError>
  readonly getProduct: (sku: string) => Effect.Effect<Product, ProductNotFound | DatabaseError>
  /** Places an order (status `pending`) at the products' current prices. */
  readonly place: (
    userId: number,
    items: Arr.NonEmptyReadonlyArray<NewItem>
  ) => Effect.Effect<Order, UserNotFound | ProductNotFound | DatabaseError>
  readonly get: (orderId: number) => Effect.Effect<Order, OrderNotFound | DatabaseError>
  readonly listForUser: (userId: number) => Effect.Effect<ReadonlyArray<Order>, DatabaseError>
  /**
   * Charges a pending order and marks it `paid`; returns the payment id. For an order already paid (a redelivered
   * step) it returns its payment id and charges nothing. A declined card marks the order `failed`.
   */
  readonly pay: (
    orderId: number
  ) => Effect.Effect<string, OrderNotFound | PaymentDeclined | InvalidOrderState | DatabaseError>
  /**
   * Takes a paid order's items out of stock and marks it `reserved`, in one transaction. An order already reserved
   * (a redelivered step) changes nothing. Too little stock for a line fails the order and refunds it: `OutOfStock`.
   */
  readonly reserve: (
    orderId: number
  ) => Effect.Effect<void, OrderNotFound | OutOfStock | InvalidOrderState | DatabaseError>
  /** Marks a reserved order `confirmed` (its confirmation was mailed). */
  readonly markConfirmed: (orderId: number) => Effect.Effect<void, DatabaseError>
  /** Deletes failed orders created before `before`; returns how many. */
  readonly deleteFailedBefore: (before: Date) => Effect.Effect<number, DatabaseError>
  /** Orders placed in `[from, to)` that did not fail, and their revenue. */
  readonly figures: (from: Date, to: Date) => Effect.Effect<{ orders: number; revenueCents: number }, DatabaseError>
}>()("@errand/examples/Orders") {}

interface OrderRow {
  readonly id: number
  readonly userId: number
  readonly status: OrderStatus
  readonly totalCents: number
  readonly paymentId: string | null
  readonly createdAt: Date
}

/** Orders on the SQL database; charges go through `Payments`. */
export const layer: Layer.Layer<Orders, never, SqlClient.SqlClient | Payments> = Layer.effect(
  Orders,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const payments = yield* Payments

    const itemsOf = (orderIds: ReadonlyArray<number>) =>
      orderIds.length === 0
        ? Effect.succeed([] as ReadonlyArray<OrderItem & { readonly orderId: number }>)
        : sql<OrderItem & { readonly orderId: number }>`
          SELECT i.order_id, i.product_id, p.sku, i.quantity, i.price_cents
          FROM order_items i JOIN products p ON p.id = i.product_id
          WHERE ${sql.in("i.order_id", orderIds)} ORDER BY i.id`

    const withItems = (rows: ReadonlyArray<OrderRow>) =>
      Effect.map(itemsOf(rows.map((row) => row.id)), (items): ReadonlyArray<Order> =>
        rows.map((row) => ({
          id: row.id,
          userId: row.userId,
          status: row.status,
          totalCents: row.totalCents,
          paymentId: row.paymentId,
          createdAt: row.createdAt.getTime(),
          items: items.filter((item) => item.orderId === row.id).map(({ orderId: _, ...item }) => item)
        })))

    const orderColumns = sql.literal("id, user_id, status, total_cents, payment_id, created_at")

    /** The order row, locked until the transaction ends. */
    const lockOrder = (orderId: number) =>
      sql<OrderRow>`SELECT ${orderColumns} FROM orders WHERE id = ${orderId} FOR UPDATE`.pipe(
        Effect.flatMap((rows) =>
          rows[0] === undefined ? Effect.fail(new OrderNotFound({ orderId })) : Effect.succeed(rows[0])
        )
      )

    const setStatus = (orderId: number, status: OrderStatus, extra?: { paymentId?: string; failure?: string }) =>
      Effect.flatMap(now, (at) =>
        sql`UPDATE orders SET status = ${status}, updated_at = ${at},
              payment_id = coalesce(${extra?.paymentId ?? null}, payment_id),
              failure = coalesce(${extra?.failure ?? null}, failure)
            WHERE id = ${orderId}`)

    const fail = (orderId: number, failure: string) =>
      sql.withTransaction(Effect.andThen(setStatus(orderId, "failed", { failure }), payments.refund(orderId)))

    const get = (orderId: number) =>
      sql<OrderRow>`SELECT ${orderColumns} FROM orders WHERE id = ${orderId}`.pipe(
        Effect.flatMap(withItems),
        dbError("orders.get"),
        Effect.flatMap((orders) =>
          orders[0] === undefined ? Effect.fail(new OrderNotFound({ orderId })) : Effect.succeed(orders[0])
        )
      )

    const getProduct = (sku: string) =>
      sql<Product>`SELECT id, sku, name, price_cents, stock FROM products WHERE sku = ${sku}`.pipe(
        dbError("orders.getProduct"),
        Effect.flatMap((rows) =>
          rows[0] === undefined ? Effect.fail(new ProductNotFound({ product: sku })) : Effect.succeed(rows[0])
        )
      )

    return Orders.of({
      addProduct: (product) =>
        sql<Product>`INSERT INTO products ${sql.insert({ ...product })} RETURNING id, sku, name, price_cents, stock`
          .pipe(dbError("orders.addProduct"), Effect.map((rows) => rows[0]!)),
      getProduct,
      place: (userId, items) =>
        sql.withTransaction(Effect.gen(function*() {
          const users = yield* sql`SELECT id FROM users WHERE id = ${userId}`.pipe(dbError("orders.place"))
          if (users.length === 0) return yield* new UserNotFound({ userId })
          const lines = yield* Effect.forEach(items, (item) =>
            Effect.map(getProduct(item.sku), (product) => ({ product, quantity: item.quantity })))
          const createdAt = yield* now
          const totalCents = lines.reduce((sum, line) =>
            sum + line.product.priceCents * line.quantity, 0)
          const [row] = yield* sql<{ readonly id: number }>`
            INSERT INTO orders ${sql.insert({ userId, totalCents, createdAt, updatedAt: createdAt })}
            RETURNING id`.pipe(dbError("orders.place"))
          yield* sql`INSERT INTO order_items ${
            // non-empty: one line per item, and `items` is non-empty
            sql.insert(Arr.map(lines as Arr.NonEmptyReadonlyArray<typeof lines[number]>, (line) => ({
              orderId: row!.id,
              productId: line.product.id,
              quantity: line.quantity,
              priceCents: line.product.priceCents
            })))}`.pipe(dbError("orders.place"))
          return row!.id
        })).pipe(
          sqlError("orders.place"),
          Effect.flatMap(get),
          Effect.catchTag("OrderNotFound", (error) => Effect.die(error)) // just inserted
        ),
      get,
      listForUser: (userId) =>
        sql<OrderRow>`SELECT ${orderColumns} FROM orders WHERE user_id = ${userId} ORDER BY id`.pipe(
          Effect.flatMap(withItems),
          dbError("orders.listForUser")
        ),
      pay: (orderId) =>
        sql.withTransaction(Effect.gen(function*() {
          const order = yield* lockOrder(orderId)
          if (order.status !== "pending") {
            if (order.paymentId !== null && order.status !== "failed") return order.paymentId // paid already
            return yield* new InvalidOrderState({ orderId, status: order.status, expected: "pending" })
          }
          const paymentId = yield* payments.charge(orderId, order.totalCents)
          yield* setStatus(orderId, "paid", { paymentId })
          return paymentId
        })).pipe(
          sqlError("orders.pay"),
          Effect.tapError((error) =>
            error._tag === "PaymentDeclined"
              ? fail(orderId, `payment declined: ${error.reason}`).pipe(dbError("orders.pay"))
              : Effect.void
          )
        ),
      reserve: (orderId) =>
        sql.withTransaction(Effect.gen(function*() {
          const order = yield* lockOrder(orderId)
          if (order.status === "reserved" || order.status === "confirmed") return // reserved already: no-op
          if (order.status !== "paid") {
            return yield* new InvalidOrderState({ orderId, status: order.status, expected: "paid" })
          }
          const lines = yield* sql<{ readonly productId: number; readonly sku: string; readonly quantity: number }>`
            SELECT i.product_id, p.sku, sum(i.quantity)::int AS quantity
            FROM order_items i JOIN products p ON p.id = i.product_id
            WHERE i.order_id = ${orderId} GROUP BY i.product_id, p.sku ORDER BY i.product_id`
          // in product order, so two orders sharing products lock them in the same order (no deadlock); the
          // conditional update waits for a concurrent one and re-checks the stock it leaves
          for (const line of lines) {
            const taken = yield* sql`
              UPDATE products SET stock = stock - ${line.quantity}
              WHERE id = ${line.productId} AND stock >= ${line.quantity} RETURNING stock`
            if (taken.length === 0) {
              const [left] = yield* sql<
                { readonly stock: number }
              >`SELECT stock FROM products WHERE id = ${line.productId}`
              return yield* new OutOfStock({
                orderId,
                sku: line.sku,
                requested: line.quantity,
                available: left?.stock ?? 0
              })
            }
          }
          yield* setStatus(orderId, "reserved")
        })).pipe(
          sqlError("orders.reserve"),
          Effect.tapError((error) =>
            error._tag === "OutOfStock"
              ? fail(orderId, `out of stock: ${error.sku}`).pipe(dbError("orders.reserve"))
              : Effect.void
          )
        ),
      markConfirmed: (orderId) => setStatus(orderId, "confirmed").pipe(dbError("orders.markConfirmed"), Effect.asVoid),
      deleteFailedBefore: (before) =>
        sql`DELETE FROM orders WHERE status = 'failed' AND created_at < ${before} RETURNING id`.pipe(
          dbError("orders.deleteFailedBefore"),
          Effect.map((rows) => rows.length)
        ),
      figures: (from, to) =>
        sql<{ readonly orders: number; readonly revenueCents: number }>`
          SELECT count(*)::int AS orders, coalesce(sum(total_cents), 0)::int AS revenue_cents
          FROM orders WHERE status <> 'failed' AND created_at >= ${from} AND created_at < ${to}`.pipe(
          dbError("orders.figures"),
          Effect.map((rows) => ({ orders: rows[0]?.orders ?? 0, revenueCents: rows[0]?.revenueCents ?? 0 }))
        )
    })
  })
)
