// The inspection service: every <category>.pvm of a folder loaded once, a vector store, and an
// HTTP API with a web page for operators (docs/api.md).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include <patchvec/inspection.h>

namespace pv {

struct ServiceOptions {
  std::filesystem::path models_dir;  // every *.pvm in it
  std::string db;                    // PostgreSQL URL; empty: <models_dir>/store.pvs
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see InspectionService::port())
  std::size_t max_body_bytes = 32u << 20;
  int max_image_side = 10000;  // pixels; larger images are refused before decoding
  int request_timeout_seconds = 30;
  int threads = 0;  // libtorch threads for the models; 0 = one per core
  InspectOptions inspect;
};

class InspectionService {
 public:
  // Loads the models and opens the store; throws pv::Error naming what is missing or broken.
  explicit InspectionService(const ServiceOptions& options);
  ~InspectionService();
  InspectionService(const InspectionService&) = delete;
  InspectionService& operator=(const InspectionService&) = delete;

  // Binds the port (throws pv::Error if it cannot) and returns the bound port.
  int bind();
  // Serves requests until stop() (from another thread or a signal handler's thread).
  void serve();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pv
