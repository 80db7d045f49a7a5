-- POST /api/v0/event/create approving a login with the right PIN (BENCH_PIN). A user's PIN
-- checks count toward its brute-force lock until the check succeeds (src/attempts.rs), so five
-- checks of one user in flight at once lock it (429): the body names BENCH_PIN_USERS (their
-- client_user_ids, comma-separated) in turn, thread t of BENCH_THREADS taking users t+1,
-- t+1+BENCH_THREADS, …, so that each user has at most about one check in flight.
local key = os.getenv("BENCH_KEY")
local pin = os.getenv("BENCH_PIN")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local headers = { ["API_KEY_ID"] = key, ["Content-Type"] = "application/json" }
local threads = 0
local users = {}
local next_index = 1

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  local n = 0
  for user in string.gmatch(os.getenv("BENCH_PIN_USERS"), "[^,]+") do
    if n % nthreads == thread_id then
      table.insert(users, user)
    end
    n = n + 1
  end
  if #users == 0 then
    error("no users for thread " .. thread_id)
  end
end

function request()
  local user = users[next_index]
  next_index = next_index % #users + 1
  local body = '{"client_user_id": "' .. user .. '", "event": "LOGIN", "timestamp": "' .. os.time() ..
    '", "method": "PIN", "code": "' .. pin .. '"}'
  return wrk.format("POST", nil, headers, body)
end
