-- POST /api/v0/event/create with signed TRUSTED_DEVICE approvals, each sent once: the server
-- refuses a signed message it accepted before (a replay, 409). BENCH_BODIES names a file of
-- bodies, one JSON object a line (examples/sdk_bench.rs `bodies`); thread t of BENCH_THREADS
-- sends lines t+1, t+1+BENCH_THREADS, … in turn, so that no two threads send the same line.
-- Past its last line a thread starts again (those answers are replays, 409) and done() says so:
-- bench/run reads the `bodies:` lines it prints.
local key = os.getenv("BENCH_KEY")
local path = os.getenv("BENCH_BODIES")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local headers = { ["API_KEY_ID"] = key, ["Content-Type"] = "application/json" }
local threads = {}
local bodies = {}
local next_index = 1
sent = 0
wrapped = 0
available = 0

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local n = 0
  for line in io.lines(path) do
    if n % nthreads == thread_id and line ~= "" then
      table.insert(bodies, line)
    end
    n = n + 1
  end
  available = #bodies
  if available == 0 then
    error("no bodies for thread " .. thread_id .. " in " .. path)
  end
end

function request()
  if next_index > #bodies then
    next_index = 1
    wrapped = wrapped + 1
  end
  local body = bodies[next_index]
  next_index = next_index + 1
  sent = sent + 1
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("bodies: thread %d sent %d of %d, wrapped %d\n", thread:get("thread_id"),
      thread:get("sent"), thread:get("available"), thread:get("wrapped")))
  end
end
