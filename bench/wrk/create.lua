-- POST /api/v0/user/create with a new identifier every time (unique across threads and runs).
local key = os.getenv("BENCH_KEY")
local headers = { ["API_KEY_ID"] = key, ["Content-Type"] = "application/json" }
local threads = 0
local counter = 0
local prefix = ""

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_id)
  prefix = "bench-" .. os.time() .. "-" .. thread_id .. "-" .. math.random(1, 1000000000) .. "-"
end

function request()
  counter = counter + 1
  local body = '{"identifier": "' .. prefix .. counter .. '@example.com"}'
  return wrk.format("POST", nil, headers, body)
end
