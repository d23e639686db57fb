-- wrk posts the image named by $PATCHVEC_WRK_IMAGE (bench/service_load.sh, bench/cluster_load.sh);
-- the summary line lists requests, errors, non-2xx answers, requests/s and p50/p99 latency.
local f = assert(io.open(assert(os.getenv("PATCHVEC_WRK_IMAGE"), "set PATCHVEC_WRK_IMAGE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d rps=%.2f p50_ms=%.1f p99_ms=%.1f\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.errors.status, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
