-- GET /api/v0/user?identifier=N for a random existing user of the benchmark project.
local key = os.getenv("BENCH_KEY")
local users = tonumber(os.getenv("BENCH_USERS"))
local headers = { ["API_KEY_ID"] = key }
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_id)
end

function request()
  return wrk.format("GET", "/api/v0/user?identifier=" .. math.random(0, users - 1), headers)
end
