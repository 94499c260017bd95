/**
 * The example app's schema, as `effect/sql` migrations: users, products with stock, orders and their items, the
 * payment provider's ledger, sessions and one-time codes. Run by `Database` when it starts (each once, in a
 * transaction; two processes starting together are serialized by the migrator's lock).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

/** The migrations, keyed `<id>_<name>` (`Migrator.fromRecord`). */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_users": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`
      CREATE TABLE users (
        id serial PRIMARY KEY,
        email text NOT NULL UNIQUE,
        name text NOT NULL,
        status text NOT NULL DEFAULT 'active',
        loyalty_points integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL
      )`.pipe(Effect.asVoid)),
  "0002_products": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`
      CREATE TABLE products (
        id serial PRIMARY KEY,
        sku text NOT NULL UNIQUE,
        name text NOT NULL,
        price_cents integer NOT NULL CHECK (price_cents >= 0),
        stock integer NOT NULL CHECK (stock >= 0)
      )`.pipe(Effect.asVoid)),
  "0003_orders": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`
        CREATE TABLE orders (
          id serial PRIMARY KEY,
          user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
          status text NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'paid', 'reserved', 'confirmed', 'failed')),
          total_cents integer NOT NULL CHECK (total_cents >= 0),
          payment_id text,
          failure text,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL
        )`,
      sql`CREATE INDEX orders_user_id ON orders (user_id)`,
      sql`CREATE INDEX orders_created_at ON orders (created_at)`,
      sql`
        CREATE TABLE order_items (
          id serial PRIMARY KEY,
          order_id integer NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
          product_id integer NOT NULL REFERENCES products (id),
          quantity integer NOT NULL CHECK (quantity > 0),
          price_cents integer NOT NULL CHECK (price_cents >= 0)
        )`,
      sql`CREATE INDEX order_items_order_id ON order_items (order_id)`,
      // the payment provider's ledger: one charge per order (the unique key makes a retried charge a no-op)
      sql`
        CREATE TABLE payments (
          id text PRIMARY KEY,
          order_id integer NOT NULL UNIQUE REFERENCES orders (id) ON DELETE CASCADE,
          amount_cents integer NOT NULL,
          refunded boolean NOT NULL DEFAULT false,
          created_at timestamptz NOT NULL
        )`
    ], { discard: true })),
  "0004_sessions_and_otp_codes": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`
        CREATE TABLE sessions (
          id text PRIMARY KEY,
          user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
          created_at timestamptz NOT NULL,
          expires_at timestamptz NOT NULL
        )`,
      sql`CREATE INDEX sessions_expires_at ON sessions (expires_at)`,
      sql`
        CREATE TABLE otp_codes (
          id serial PRIMARY KEY,
          user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
          purpose text NOT NULL,
          code text NOT NULL UNIQUE,
          created_at timestamptz NOT NULL,
          expires_at timestamptz NOT NULL,
          used_at timestamptz
        )`,
      sql`CREATE INDEX otp_codes_created_at ON otp_codes (created_at)`
    ], { discard: true }))
}
