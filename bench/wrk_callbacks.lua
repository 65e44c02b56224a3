-- wrk script for `bench/ingest.py --generator wrk`: sends each pre-signed
-- callback of a file once, in turn, and reports the run on one line.
--
--   wrk -t1 -c50 -d8s --latency -s wrk_callbacks.lua URL -- FILE CONNECTIONS SEND_SECONDS
--
-- FILE holds one callback a line: its X-Webhook-Signature, a tab, its JSON
-- body. Run it with one thread (-t1): the counter below is that thread's own.
--
-- It sends for SEND_SECONDS (a little less than -d). After that, a connection
-- whose answer comes in sends nothing more, and once all are idle the thread
-- stops: no callback is left unanswered when wrk stops, so the 2xx answers
-- are exactly the callbacks the server acknowledged. If the file runs out
-- first, it stops the same way and reports `"exhausted": true` rather than
-- send any callback twice.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } wrk_callbacks_timespec;
int clock_gettime(int clock, wrk_callbacks_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("wrk_callbacks_timespec")

local function now()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
   return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) / 1e9
end

-- The thread's state. The globals are what done() reads with thread:get().
local callbacks = {}
local connections, send_seconds
local verified = false
local idle = 0
available = 0
sent = 0
non_2xx = 0
exhausted = false
first_sent_at = 0
-- When the last connection went idle, its last answer in: the end of the window.
drained_at = 0

function init(args)
   connections = tonumber(args[2])
   send_seconds = tonumber(args[3])
   local headers = { ["Content-Type"] = "application/json" }
   for line in io.lines(args[1]) do
      local tab = line:find("\t", 1, true)
      headers["X-Webhook-Signature"] = line:sub(1, tab - 1)
      callbacks[#callbacks + 1] = wrk.format("POST", nil, headers, line:sub(tab + 1))
   end
   available = #callbacks
end

function request()
   -- Before the run wrk calls request() once only to parse what it returns
   -- (script_verify_request in wrk 4.1): that one is never sent.
   if not verified then
      verified = true
      return callbacks[1]
   end
   local at = now()
   if sent == 0 then
      first_sent_at = at
   end
   if sent < available and at - first_sent_at < send_seconds then
      sent = sent + 1
      return callbacks[sent]
   end
   exhausted = exhausted or sent == available
   -- An empty request: wrk writes nothing and the connection stays idle.
   idle = idle + 1
   if idle == connections then
      drained_at = at
      wrk.thread:stop()
   end
   return ""
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
   end
end

-- setup() and done() run in wrk's main environment, not the thread's.
local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

function done(summary, latency, requests)
   local thread = threads[1]
   local errors = summary.errors
   local window = 0
   if thread:get("drained_at") > 0 then
      window = thread:get("drained_at") - thread:get("first_sent_at")
   end
   io.write(string.format(
      'WRK_RESULT {"answers": %d, "sent": %d, "available": %d, "exhausted": %s,'
         .. ' "window_s": %.6f, "wrk_duration_s": %.6f, "non_2xx": %d,'
         .. ' "socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d},'
         .. ' "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
      summary.requests, thread:get("sent"), thread:get("available"),
      tostring(thread:get("exhausted")), window, summary.duration / 1e6,
      thread:get("non_2xx"), errors.connect, errors.read, errors.write, errors.timeout,
      latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3
   ))
end
