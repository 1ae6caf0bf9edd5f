/**
 * Migration 0004: governance. A task's worktree, judging and apply state (`tasks.governance`, JSON),
 * and the waivers that lift council gates.
 */
import type { Kysely } from 'kysely';

/** Add `tasks.governance` and the `waivers` table. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('tasks').addColumn('governance', 'text').execute();
  await db.schema
    .createTable('waivers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('task_id', 'text', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('waivers_task').on('waivers').columns(['task_id']).execute();
}
