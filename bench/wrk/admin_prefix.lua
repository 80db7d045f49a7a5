-- GET /admin/v1/users?q=PREFIX&limit=50: a prefix search, a new prefix every request. The
-- benchmark project's identifiers are the numbers 0 … BENCH_USERS-1 as text (see seed() in
-- bench/run), so a prefix is the first 3 to 5 characters of a random one (the whole of it when it
-- is shorter): every prefix matches at least one user.
local headers = { ["API_KEY_ID"] = os.getenv("BENCH_KEY"), ["API_SECRET_KEY"] = os.getenv("BENCH_SECRET") }
local users = tonumber(os.getenv("BENCH_USERS"))
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_id)
end

function request()
  local identifier = tostring(math.random(0, users - 1))
  local prefix = string.sub(identifier, 1, math.random(3, 5))
  return wrk.format("GET", "/admin/v1/users?limit=50&q=" .. prefix, headers)
end
