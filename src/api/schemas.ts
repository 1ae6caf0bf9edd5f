/**
 * Schemas the routes share: the error body and the views of core/views.ts, as zod schemas (they
 * serialize answers and describe them in the OpenAPI document).
 */
import { z } from 'zod';

/** Every error answer: `{code, message}`, `details` for validation problems. */
export const errorBody = z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() });

/** A JSON object (described by `what`) whose fields pass through unchanged. */
export function json(what: string) {
  return z.looseObject({}).describe(what);
}

const iso = z.string().describe('ISO 8601 time');

/** A task as listed (core/views.ts `TaskView`). */
export const taskViewSchema = z.object({
  id: z.string(),
  key: z.string(),
  workflow_id: z.string().nullable(),
  agent: z.string().nullable(),
  state: z.string(),
  attempts: z.number(),
  priority: z.number(),
  exit_code: z.number().nullable(),
  reason: z.string().nullable(),
  cost_usd: z.number(),
  tokens: z.number(),
  session_id: z.string().nullable(),
  budget: z.unknown(),
  governance: z.unknown(),
  created_at: iso,
  started_at: iso.nullable(),
  ended_at: iso.nullable(),
  duration_ms: z.number().nullable(),
});

/** A task event. */
export const eventViewSchema = z.object({
  seq: z.number(),
  time: iso,
  attempt_id: z.string().nullable(),
  type: z.string(),
  data: z.unknown(),
});

/** An attempt. */
export const attemptViewSchema = z.object({
  id: z.string(),
  number: z.number(),
  epoch: z.number(),
  agent: z.string(),
  instance: z.number(),
  state: z.string(),
  pid: z.number().nullable(),
  exit_code: z.number().nullable(),
  signal: z.string().nullable(),
  error: z.string().nullable(),
  cost_usd: z.number(),
  tokens: z.number(),
  usage: z.unknown(),
  session_id: z.string().nullable(),
  started_at: iso,
  ended_at: iso.nullable(),
  duration_ms: z.number().nullable(),
});

/** A task with its prompt, output, attempts, events and verdicts. */
export const taskDetailSchema = taskViewSchema.extend({
  prompt: z.string(),
  needs: z.array(z.string()),
  capabilities: z.array(z.string()),
  workdir: z.string(),
  output: z.string().nullable(),
  max_attempts: z.number(),
  epoch: z.number(),
  attempts_detail: z.array(attemptViewSchema),
  events: z.array(eventViewSchema),
  verdicts: z.array(z.looseObject({})).describe('the council verdicts of the task, oldest first'),
});
