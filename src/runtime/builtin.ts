/**
 * The runtimes a `smith` process has: one adapter per `runtime:` kind an agent may name.
 */
import { ClaudeCodeRuntime } from './claude-code/index.js';
import { CodexRuntime } from './codex/index.js';
import { GeminiRuntime } from './gemini/index.js';
import { FunctionRuntime } from './function/function-runtime.js';
import { HttpRuntime } from './http/index.js';
import { LlmRuntime } from './llm/index.js';
import { ProcessRuntime } from './process/index.js';
import { TmuxRuntime } from './tmux/index.js';
import type { AgentRuntime } from './types.js';

/**
 * A fresh set of every built-in runtime adapter: `process`, `function` (in-process; library API),
 * `http` (remote workers), `llm` (models through the AI SDK), `claude-code`, `codex`, `gemini`, `tmux`. Each call makes new adapters (the
 * `http` runtime's circuit breakers are per adapter), so call it once per engine.
 *
 * @returns the adapters, one per kind
 */
export function builtinRuntimes(): AgentRuntime[] {
  return [
    new ProcessRuntime(),
    new FunctionRuntime(),
    new HttpRuntime(),
    new LlmRuntime(),
    new ClaudeCodeRuntime(),
    new CodexRuntime(),
    new GeminiRuntime(),
    new TmuxRuntime(),
  ];
}
