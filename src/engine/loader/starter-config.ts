/**
 * The `smith.yaml` that `smith init` writes.
 */

/**
 * A commented starter `smith.yaml`: two agents (`sh`, a shell with capability `shell`; `claude`,
 * Claude Code in print mode with capabilities `code` and `review`), and every other section with
 * its default value, each field explained. It validates as is (a test checks it).
 */
export const STARTER_CONFIG = `# smith.yaml: MisterSmith's configuration. Every section is optional.
# Durations: "500ms", "30s", "10m", "2h", "1d" or a number of milliseconds.
# Sizes: "512KiB", "1MiB" or a number of bytes.

# Agents: the workers tasks run on, by name. A workflow file may define more under its own
# "agents:"; one with the same name there replaces the one here.
agents:
  sh:
    # How the agent runs. "process": one process per attempt of a task.
    runtime: process
    # The argv (not a shell line). {prompt}, {task_id} and {workdir} are replaced, each as
    # exactly one argument. The task is also written as JSON to the process's stdin.
    command: ["sh", "-c", "{prompt}"]
    # What it can do. A task asking for capabilities runs on an agent that has all of them.
    capabilities: [shell]
    # At most this many of its attempts at once. Default 1.
    concurrency: 4
    # Extra environment variables for its processes (optional).
    # env: { LC_ALL: C }
    # Per-attempt timeout for its tasks when a task sets none (optional; defaults.timeout otherwise).
    # timeout: 10m
    # Time between SIGTERM and SIGKILL when an attempt is canceled or times out. Default 5s.
    kill_grace: 5s
    # Bytes of stdout and of stderr kept per attempt; the rest is counted and dropped. Default 1MiB.
    output_limit: 1MiB

  claude:
    # Claude Code in print mode: the prompt goes in, the answer comes out on stdout.
    # Needs the "claude" CLI on PATH; see "claude --help" for flags that let it edit files.
    runtime: process
    command: ["claude", "-p", "{prompt}"]
    capabilities: [code, review]
    concurrency: 2
    timeout: 30m

# Applied to tasks that do not set them.
defaults:
  # Per-attempt timeout for agents that set none (optional; no timeout when absent).
  # timeout: 30m
  # Retries after the first failed attempt. Default 0.
  retries: 0
  # 1 (highest) to 10 (lowest). Default 5.
  priority: 5

engine:
  # Attempts running at once across all agents. Default 16.
  concurrency: 16

store:
  # FULL (default): a recorded change survives power loss. NORMAL: it survives a crash of the
  # process only, and writes are faster.
  synchronous: FULL

# smith serve: the HTTP API (docs/api.md). Keys: smith keys create --role viewer|operator|admin.
# server:
#   host: 127.0.0.1       # loopback only by default
#   port: 7700
#   rate_limit: 1000      # requests per key per rate_window
#   rate_window: 1m

# Service level objectives and their burn-rate alerts (docs/slos-and-alerts.md).
# slos:
#   - { name: success, sli: success_rate, objective: 99%, window: 1h }
#   - { name: latency, sli: latency, threshold: 30s, objective: 95%, window: 1h }
# webhooks:
#   - { url: https://hooks.example.com/smith, secret_env: SMITH_WEBHOOK_SECRET }
`;
