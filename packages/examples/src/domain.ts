/**
 * The example app's domain: the shapes its actors carry and the errors they can fail with. Plain schemas, shared by
 * producers (the web side) and workers; nothing here touches a database or a mail server.
 */
import { Schema } from "effect"

/** A database id (a positive integer). */
export const Id = Schema.Int.check(Schema.isGreaterThan(0))

/** A user of the app. */
export const User = Schema.Struct({
  id: Id,
  email: Schema.String,
  name: Schema.String,
  status: Schema.String,
  loyaltyPoints: Schema.Int
})

/** A user of the app. */
export type User = typeof User.Type

/** A product with its stock. */
export const Product = Schema.Struct({
  id: Id,
  sku: Schema.String,
  name: Schema.String,
  priceCents: Schema.Int,
  stock: Schema.Int
})

/** A product with its stock. */
export type Product = typeof Product.Type

/** Where an order is in its pipeline. */
export const OrderStatus = Schema.Literals(["pending", "paid", "reserved", "confirmed", "failed"])

/** Where an order is in its pipeline. */
export type OrderStatus = typeof OrderStatus.Type

/** One line of an order. */
export const OrderItem = Schema.Struct({
  productId: Id,
  sku: Schema.String,
  quantity: Schema.Int.check(Schema.isGreaterThan(0)),
  priceCents: Schema.Int
})

/** One line of an order. */
export type OrderItem = typeof OrderItem.Type

/** An order with its lines. */
export const Order = Schema.Struct({
  id: Id,
  userId: Id,
  status: OrderStatus,
  totalCents: Schema.Int,
  paymentId: Schema.NullOr(Schema.String),
  createdAt: Schema.Number,
  items: Schema.Array(OrderItem)
})

/** An order with its lines. */
export type Order = typeof Order.Type

// ---------------------------------------------------------------------------------------------------------------
// Errors. Tagged classes with fields: they travel in dead letters and results, so they are Schema errors.

/** No user has this id. */
export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", { userId: Schema.Number }) {}

/** No order has this id. */
export class OrderNotFound extends Schema.TaggedError<OrderNotFound>()("OrderNotFound", { orderId: Schema.Number }) {}

/** No product has this id or SKU. */
export class ProductNotFound extends Schema.TaggedError<ProductNotFound>()("ProductNotFound", {
  product: Schema.String
}) {}

/** Too little stock for an order's line: the order fails, its payment is refunded. */
export class OutOfStock extends Schema.TaggedError<OutOfStock>()("OutOfStock", {
  orderId: Schema.Number,
  sku: Schema.String,
  requested: Schema.Int,
  available: Schema.Int
}) {}

/** The payment provider declined the order's card: the order fails. */
export class PaymentDeclined extends Schema.TaggedError<PaymentDeclined>()("PaymentDeclined", {
  orderId: Schema.Number,
  reason: Schema.String
}) {}

/** An order is not in the state a step expects (e.g. reserving stock of an order that was never paid). */
export class InvalidOrderState extends Schema.TaggedError<InvalidOrderState>()("InvalidOrderState", {
  orderId: Schema.Number,
  status: Schema.String,
  expected: Schema.String
}) {}

/** The database failed (connection lost, serialization failure...): retried. */
export class DatabaseError extends Schema.TaggedError<DatabaseError>()("DatabaseError", {
  operation: Schema.String,
  message: Schema.String
}) {}

/** The mail server refused or could not be reached: retried. */
export class MailerUnavailable extends Schema.TaggedError<MailerUnavailable>()("MailerUnavailable", {
  to: Schema.String,
  reason: Schema.String
}) {}

/** A file could not be written to or read from the storage folder. */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  path: Schema.String,
  reason: Schema.String
}) {}

/** The database backup failed (the dump exited non-zero, or could not start). */
export class BackupFailed extends Schema.TaggedError<BackupFailed>()("BackupFailed", {
  reason: Schema.String
}) {}

/** The payments ledger does not match the orders: the critical task fails and someone is alerted. */
export class LedgerMismatch extends Schema.TaggedError<LedgerMismatch>()("LedgerMismatch", {
  day: Schema.String,
  orphanPayments: Schema.Array(Schema.String),
  unpaidOrders: Schema.Array(Schema.Number)
}) {}
