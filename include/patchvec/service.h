// The inspection service: every <category>.pvm of a folder loaded once, a vector store, and an
// HTTP API with a web page for operators (docs/api.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <patchvec/batcher.h>
#include <patchvec/image.h>
#include <patchvec/inspection.h>
#include <patchvec/inspector.h>
#include <patchvec/precision.h>
#include <patchvec/search_method.h>
#include <patchvec/store.h>

namespace pv {

struct ServiceOptions {
  // Every *.pvm in it; empty: the models published in store.db (patchvec publish), each
  // category's newest revision, followed while serving (a new one is swapped in between
  // requests, within a second of its publication).
  std::filesystem::path models_dir;
  StoreLocation store;  // open_store(); its default file: <models_dir>/store.pvs
  // Published models: where their files are kept to be loaded (empty: $XDG_CACHE_HOME/patchvec/
  // models), and how often the database is checked besides its notifications.
  std::filesystem::path model_cache_dir;
  int model_check_seconds = 30;
  // Where the images of anomaly reports are kept for the operators' decisions (by SHA-256);
  // empty: <models_dir>/report-images, or $XDG_DATA_HOME/patchvec/report-images without one.
  std::filesystem::path report_images_dir;
  // Reports the store cannot take now (no PostgreSQL primary answers) wait here, fsync'd, and are
  // stored once when it can (ReportSpool); empty: <models_dir>/report-spool, or
  // $XDG_DATA_HOME/patchvec/report-spool without one. One folder per service.
  std::filesystem::path report_spool_dir;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free one (bind() returns it)

  // Who may call it: a token file (service/auth.h has its format). Without one the service
  // answers everyone, so it binds a loopback address only, unless `insecure` says otherwise.
  std::filesystem::path auth_tokens;
  bool insecure = false;
  // The names clients may reach the service by (the Host header's name; "*": any); others are
  // refused with 421, so a page whose name an attacker pointed at this address (DNS rebinding)
  // gets nothing. Empty: `host`, localhost, 127.0.0.1 and ::1; any for a wildcard host (0.0.0.0).
  // Whatever the names, a state-changing request from a page of another origin (Origin,
  // Sec-Fetch-Site) is refused with 403.
  std::vector<std::string> allowed_hosts;

  // Limits on one request, and on all of them (docs/api.md: the memory they bound).
  std::size_t max_body_bytes = 32u << 20;
  ImageLimits image_limits;          // decoded pixels per image
  int request_timeout_seconds = 30;  // to receive a whole request, headers and body
  int max_connections = 32;
  int max_connections_per_client = 8;
  int max_concurrent_inspections = 4;  // images decoded and scored at once; others wait

  // Every prediction runs on one compute thread with `threads` libtorch threads (a budget the
  // whole process shares); concurrent requests join one forward pass (PredictionBatcher), and
  // categories whose backbones are identical (the same pretrained weights) share one in memory.
  int threads = 0;  // 0 = one per core
  // What each model computes in (ModelLoadOptions::precision): its own (nullopt: or fp32 where
  // this CPU cannot run it), or fp32.
  std::optional<Precision> precision;
  // How each model searches its bank (ModelLoadOptions::search).
  SearchMethod search = SearchMethod::kAuto;
  BatcherOptions batching{.max_batch = 4, .max_wait_ms = 5.0};
  InspectOptions inspect;
};

// A station's lanes as the service shows them: GET /v1/station, its live events
// (/v1/station/events), each lane's latest picture (/v1/station/lanes/{lane}/latest) and lines
// on /metrics. pv::Station implements it. Thread-safety: every method from any thread.
class StationView {
 public:
  virtual ~StationView() = default;
  virtual std::string status_json() const = 0;   // docs/station.md
  virtual std::string metrics_text() const = 0;  // Prometheus text, with its # TYPE lines
  // The image a lane inspected last, with its prediction; nullptr before the first. Throws
  // NotFoundError for a lane the station does not have.
  virtual std::shared_ptr<const Inspected> latest(const std::string& lane) const = 0;
  // A software trigger for the lane's camera; throws NotFoundError for an unknown lane,
  // ConflictError when the lane cannot be triggered now.
  virtual void trigger(const std::string& lane) const = 0;
  // Waits until something was recorded after `version`, `timeout` passed or the station stops;
  // returns the version now, 0 once the station stops.
  virtual std::uint64_t wait_for_change(std::uint64_t version,
                                        std::chrono::milliseconds timeout) const = 0;
};

// Thread-safety: serve() runs the server; stop() may be called from any thread.
class InspectionService {
 public:
  // Loads the models and opens the store; throws pv::Error naming what is missing or broken, or
  // refusing a non-loopback host without auth_tokens (and without insecure).
  explicit InspectionService(const ServiceOptions& options);
  // Serves `inspector` (its models, store, batching and report spool), which the caller shares
  // and keeps alive longer than this object: a station inspects its lanes' images with it too.
  // The options that make an inspector (models_dir, store, model_cache_dir,
  // model_check_seconds, the report folders, threads, batching) are not used.
  // With `station`, the station's endpoints too (StationView), which must outlive this object.
  InspectionService(const ServiceOptions& options, Inspector& inspector,
                    const StationView* station = nullptr);
  ~InspectionService();
  InspectionService(const InspectionService&) = delete;
  InspectionService& operator=(const InspectionService&) = delete;

  // Binds the port (throws pv::Error if it cannot) and returns the bound port.
  int bind();
  // Serves requests until stop() (from another thread or a signal handler's thread).
  void serve();
  void stop();

  // Serves one connection on the calling thread until the client closes it: for fuzzing and
  // tests that speak raw HTTP over a socketpair. `fd` is closed afterwards.
  void serve_connection(int fd);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True for addresses only this machine can reach: 127.0.0.0/8, ::1, "localhost".
bool is_loopback_host(const std::string& host);

}  // namespace pv
