-- wrk script of the service load test: Zipf-distributed customer ids, a read/write mix, a bounded request count.
-- Arguments (after --): customers orders_per_customer read_ratio max_requests_per_thread seed zipf_s run
--   reads:  50 % GET /api/customers/{id}, 30 % GET /api/orders/{id}/{order} (customer joined),
--           20 % GET /api/customers/{id}/orders?limit=10 (a query)
--   writes: POST /api/customers/{id}/orders (a customer places a new order; ids unique per run and thread)
-- done() prints one line "BENCH_JSON {...}" with the counts and latency percentiles (microseconds).

local customers, per, read_ratio, max_requests, seed, s, run
local cdf = {}
local sent = 0
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
  table.insert(threads, thread)
end

function init(args)
  customers = tonumber(args[1]) or 1000
  per = tonumber(args[2]) or 10
  read_ratio = tonumber(args[3]) or 0.9
  max_requests = tonumber(args[4]) or 1000000
  seed = tonumber(args[5]) or 1
  s = tonumber(args[6]) or 1.0
  run = args[7] or "r"
  math.randomseed(seed * 1000 + (thread_id or 1))
  local total = 0
  for i = 1, customers do
    total = total + 1 / (i ^ s)
    cdf[i] = total
  end
  for i = 1, customers do
    cdf[i] = cdf[i] / total
  end
end

local function zipf()
  local u = math.random()
  local lo, hi = 1, customers
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return string.format("c%06d", lo - 1)
end

function request()
  sent = sent + 1
  local cid = zipf()
  local oid = string.format("o%03d", math.random(0, per - 1))
  if math.random() < read_ratio then
    local r = math.random()
    if r < 0.5 then
      return wrk.format("GET", "/api/customers/" .. cid)
    elseif r < 0.8 then
      return wrk.format("GET", "/api/orders/" .. cid .. "/" .. oid)
    else
      return wrk.format("GET", "/api/customers/" .. cid .. "/orders?limit=10")
    end
  end
  local new = string.format("n%s-%d-%d", run, thread_id or 1, sent)
  local body = string.format('{"customer_id":"%s","order_id":"%s","total_cents":%d}',
                             cid, new, math.random(1, 100000))
  return wrk.format("POST", "/api/customers/" .. cid .. "/orders", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if sent >= max_requests then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
    '"errors_status":%d,"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
