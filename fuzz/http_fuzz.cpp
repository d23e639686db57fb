// The service's HTTP handling: raw request bytes (any route, headers, query and body, several
// requests on one connection) answered by a real InspectionService with a small trained model.
#include <cstdint>
#include <thread>

#include <sys/socket.h>
#include <unistd.h>

#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/service.h>
#include <patchvec/store.h>
#include <patchvec/synth.h>

#include "fuzzing.h"

namespace {

pv::InspectionService* service = nullptr;

// A tile model at 64 pixels (random ResNet-18 with BatchNorm re-estimated: fast, and every
// inspection path runs), its images indexed, one labelled defect added.
void start_service() {
  pv::log::set_quiet(true);
  const auto dir = pv::fuzzing::scratch_dir("http");
  pv::synth::write_dataset(
      dir / "data",
      {.categories = {"tile"}, .train = 6, .test_good = 1, .test_bad = 1, .size = 64});
  std::vector<std::filesystem::path> train;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "data/tile/train/good")) {
    train.push_back(entry.path());
  }
  pv::PatchCoreOptions options;
  options.embedder = {.backbone = "resnet18", .image_size = 64, .crop_size = 56, .threads = 1};
  options.sigma = 2;
  pv::Model model = pv::Model::fit(train, "tile", options);
  model.set_thresholds({.image = 1, .pixel = 1, .image_min = 0, .image_max = 2, .source = "fuzz"});
  std::filesystem::create_directories(dir / "models");
  model.save(dir / "models/tile.pvm");
  const auto predictions = model.predict(train);
  std::vector<pv::StoredImage> images;
  for (std::size_t i = 0; i < train.size(); ++i) {
    images.push_back(
        {.path = train[i].string(), .category = "tile", .embedding = predictions[i].embedding});
  }
  const auto store = pv::open_embedded_store(dir / "models/store.pvs");
  store->replace_dataset("tile", images);
  store->add_image({.path = train[0].string(),
                    .category = "tile",
                    .anomalous = true,
                    .defect = "crack",
                    .embedding = predictions[0].embedding});
  service = new pv::InspectionService({.models_dir = dir / "models",
                                       .port = 0,
                                       .image_limits = {.max_pixels = 1'000'000},
                                       .request_timeout_seconds = 2,
                                       .threads = 1});
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  start_service();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  // The client: sends everything, then reads whatever comes back until the server closes.
  std::thread client([&] {
    std::size_t sent = 0;
    while (sent < size) {
      const ssize_t n = ::send(fds[0], data + sent, size - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    ::shutdown(fds[0], SHUT_WR);
    char buffer[65536];
    while (::recv(fds[0], buffer, sizeof buffer, 0) > 0) {
    }
  });
  service->serve_connection(fds[1]);  // closes fds[1]
  client.join();
  ::close(fds[0]);
  return 0;
}
