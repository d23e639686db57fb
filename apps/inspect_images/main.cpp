// inspect-images: the smallest program on PatchVec's public API, for people who embed PatchVec
// instead of calling the CLI or the service. It loads a folder of models (as `patchvec serve`
// does), opens the embedded store beside them, and prints one JSON line per image: the verdict and
// the similar images or closest known defects (the form of `patchvec search --json`).
//
//   build/inspect-images MODELS_DIR CATEGORY IMAGE...
#include <cstdio>
#include <filesystem>
#include <vector>

#include <patchvec/error.h>
#include <patchvec/inspector.h>
#include <patchvec/json.h>
#include <patchvec/store.h>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODELS_DIR CATEGORY IMAGE...\n", argv[0]);
    return 2;
  }
  try {
    const std::filesystem::path models = argv[1];
    const pv::Inspector inspector(pv::load_models(models),
                                  pv::open_store({.file = models / "store.pvs"}));
    const std::vector<std::filesystem::path> images(argv + 3, argv + argc);
    for (const pv::Inspected& r : inspector.inspect(argv[2], images, {.report = false})) {
      std::printf("%s\n", pv::json::inspection(r.inspection).dump().c_str());
    }
  } catch (const std::exception& e) {  // pv::Error: a message naming the file or setting
    std::fprintf(stderr, "inspect-images: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
