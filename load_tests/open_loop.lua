-- wrk script: open-loop load at a fixed offered rate against the prediction API.
--
--   RATE=2000 IDS=ids.txt [BATCH=100] [API_KEY=...] wrk -t1 -c256 -d20s -s load_tests/open_loop.lua URL
--
-- Requests are due on a fixed schedule (RATE per second over all threads, evenly spaced) whatever
-- the answers do: a free connection takes the next due slot and waits for it. Latency is wrk's
-- (send to last byte). A request sent later than its slot (every connection busy) is counted as
-- late: with enough connections none is, and the latencies are those of an open-loop load; a run
-- with late sends did not deliver its offered rate. Each request asks for random ids of IDS (one
-- per line); BATCH > 0 posts that many ids to /v1/predict/batch instead.
-- done() prints one JSON line prefixed with "RESULT " (times in ms).

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } timespec;
  int clock_gettime(int clk, timespec *tp);
]]
local ts = ffi.new("timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

ffi.cdef [[ typedef struct { int32_t start, stop; } id_span; ]]

-- The ids live in one Lua string, located by an FFI array of spans: the collector sees two
-- objects instead of a million strings (one table of 1M strings is marked in one step, a pause of
-- the load generator whenever a GC cycle reaches it).
local function load_ids(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("*a")
  file:close()
  local count = select(2, text:gsub("\n", "\n")) + 1
  local spans = ffi.new("id_span[?]", count)
  local n, pos = 0, 1
  while pos <= #text do
    local stop = text:find("\n", pos, true) or (#text + 1)
    if stop > pos then
      spans[n].start, spans[n].stop = pos, stop - 1
      n = n + 1
    end
    pos = stop + 1
  end
  return { text = text, spans = spans, n = n }
end

local ids, interval, next_slot, due, head, tail
local batch, headers, path
sent, late_1ms, late_10ms, late_max_ms, unscheduled = 0, 0, 0, 0, 0

function init(args)
  local rate = tonumber(os.getenv("RATE") or "100")
  local nthreads = tonumber(os.getenv("THREADS") or "1")
  batch = tonumber(os.getenv("BATCH") or "0")
  ids = load_ids(os.getenv("IDS") or "ids.txt")
  interval = 1e6 * nthreads / rate
  math.randomseed(1234 + id)
  next_slot = now_us() + 100000 + interval * id / nthreads -- start in 100 ms, threads interleaved
  due, head, tail = {}, 1, 0
  headers = { ["Content-Type"] = "application/json" }
  local key = os.getenv("API_KEY")
  if key and key ~= "" then headers["X-API-Key"] = key end
  path = batch > 0 and "/v1/predict/batch" or "/v1/predict"
end

function delay()
  local slot = next_slot
  next_slot = next_slot + interval
  tail = tail + 1
  due[tail] = slot
  local wait_ms = (slot - now_us()) / 1000
  return wait_ms > 0 and math.floor(wait_ms + 0.5) or 0
end

local function random_id()
  local span = ids.spans[math.random(ids.n) - 1]
  return ids.text:sub(span.start, span.stop)
end

function request()
  if ids == nil then -- wrk checks request() once in its main state, where init() never ran
    return wrk.format("POST", "/v1/predict", { ["Content-Type"] = "application/json" }, '{"customer_id":"-"}')
  end
  local slot = due[head]
  if slot == nil then -- a reconnected connection sends without asking delay(): give it the next slot
    unscheduled = unscheduled + 1
    slot = next_slot
    next_slot = next_slot + interval
  else
    due[head] = nil
    head = head + 1
  end
  local late = math.max(0, (now_us() - slot) / 1000)
  sent = sent + 1
  if late > 1 then late_1ms = late_1ms + 1 end
  if late > 10 then late_10ms = late_10ms + 1 end
  if late > late_max_ms then late_max_ms = late end
  local body
  if batch > 0 then
    local picked = {}
    for i = 1, batch do picked[i] = '"' .. random_id() .. '"' end
    body = '{"customer_ids":[' .. table.concat(picked, ",") .. ']}'
  else
    body = '{"customer_id":"' .. random_id() .. '"}'
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local s, l1, l10, lmax, u = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent")
    u = u + t:get("unscheduled")
    l1 = l1 + t:get("late_1ms")
    l10 = l10 + t:get("late_10ms")
    lmax = math.max(lmax, t:get("late_max_ms"))
  end
  local e = summary.errors
  local function ms(us) return us / 1000 end
  io.write(string.format(
    'RESULT {"requests":%d,"duration_s":%.3f,"p50_ms":%.3f,"p90_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,' ..
    '"p999_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d},"sent":%d,"late_over_1ms":%d,"late_over_10ms":%d,"late_max_ms":%.3f,"unscheduled":%d}\n',
    summary.requests, summary.duration / 1e6, ms(latency:percentile(50)), ms(latency:percentile(90)),
    ms(latency:percentile(95)), ms(latency:percentile(99)), ms(latency:percentile(99.9)), ms(latency.max),
    ms(latency.mean), e.connect, e.read, e.write, e.status, e.timeout, s, l1, l10, lmax, u))
end
