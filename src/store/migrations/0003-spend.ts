/**
 * Migration 0003: spend and sessions. A task's budget (JSON), its spend (USD, tokens) and the
 * native session id of its agent; an attempt's spend, tokens by kind (JSON) and session id.
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';

/** Add `tasks.budget`, `tasks.cost_usd`, `tasks.tokens`, `tasks.session_id` and the same on `attempts` (with `usage`). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('tasks').addColumn('budget', 'text').execute();
  await db.schema
    .alterTable('tasks')
    .addColumn('cost_usd', 'real', (c) => c.notNull().defaultTo(sql`0`))
    .execute();
  await db.schema
    .alterTable('tasks')
    .addColumn('tokens', 'bigint', (c) => c.notNull().defaultTo(sql`0`))
    .execute();
  await db.schema.alterTable('tasks').addColumn('session_id', 'text').execute();
  await db.schema.alterTable('attempts').addColumn('session_id', 'text').execute();
  await db.schema
    .alterTable('attempts')
    .addColumn('cost_usd', 'real', (c) => c.notNull().defaultTo(sql`0`))
    .execute();
  await db.schema
    .alterTable('attempts')
    .addColumn('tokens', 'bigint', (c) => c.notNull().defaultTo(sql`0`))
    .execute();
  await db.schema.alterTable('attempts').addColumn('usage', 'text').execute();
}
