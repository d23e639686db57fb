// One image's Model::predict() from C++, the reference bench/python.sh compares the Python
// module's per-call time with: the same model, image and threads.
//
//   predict_call_bench --model M.pvm --image I.png [--repeat 30] [--threads 0]
// Prints one JSON line: median ms of predict(path) and of predict(decoded image).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <CLI/CLI.hpp>

#include <patchvec/image.h>
#include <patchvec/log.h>
#include <patchvec/model.h>
#include <patchvec/system.h>

namespace {

template <typename Call>
double median_ms(int repeat, Call&& call) {
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("One image's predict() from C++");
  std::filesystem::path model_path, image_path;
  int repeat = 30, threads = 0;
  app.add_option("--model", model_path)->required();
  app.add_option("--image", image_path)->required();
  app.add_option("--repeat", repeat);
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  pv::log::set_quiet(true);
  pv::switch_blas_core();  // as the Python module does when it is imported
  const pv::Model model = pv::Model::load(model_path, {.threads = threads});
  const std::vector<std::filesystem::path> one = {image_path};
  const pv::Image image = pv::load_image(image_path);
  model.predict(one, "");  // warm up
  const double file_ms = median_ms(repeat, [&] { model.predict(one, ""); });
  const std::vector<const pv::Image*> decoded = {&image};
  const double image_ms = median_ms(repeat, [&] { model.predict(decoded, ""); });
  std::printf("{\"file_ms\": %.3f, \"image_ms\": %.3f}\n", file_ms, image_ms);
  return 0;
}
