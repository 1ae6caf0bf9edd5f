/**
 * OpenTelemetry spans around what takes time in MisterSmith: task attempts (`smith.attempt`) and
 * council judges (`smith.judge`). Only the OpenTelemetry API is used, so with no SDK registered the
 * spans are no-ops (no exporter by default); an application that registers a tracer provider (the
 * OpenTelemetry Node SDK with an OTLP exporter, say) receives them.
 */
import { SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';

/** The instrumentation scope name of every span. */
export const TRACER_NAME = 'mistersmith';

/**
 * The tracer, got once: the API's global proxy tracer delegates to whatever provider is registered
 * when a span starts, so one registered later is still used.
 */
const tracer = trace.getTracer(TRACER_NAME);

/**
 * Run `fn` inside a span named `name` with `attributes`; the span ends when `fn` settles, with an
 * error status (and the exception recorded) when it throws.
 * @returns what `fn` returns
 */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const span = tracer.startSpan(name, { attributes });
  try {
    return await fn(span);
  } catch (err) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    span.end();
  }
}
