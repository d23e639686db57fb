// Helpers shared by the vector-store tests: random embeddings, the cosine reference, and the URL
// of the test server (scripts/pgvector-server.sh).
#pragma once

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <patchvec/store.h>

namespace pv::testing {

inline std::vector<float> random_vector(std::mt19937& rng, std::size_t dim) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(dim);
  for (float& x : v) x = normal(rng);
  return v;
}

// `count` images of `category`: every `anomalous_every`-th one a "crack", with random embeddings.
inline std::vector<StoredImage> random_images(std::mt19937& rng, const std::string& category,
                                              int count, std::size_t dim,
                                              const std::string& prefix = "",
                                              int anomalous_every = 4) {
  std::vector<StoredImage> images;
  for (int i = 0; i < count; ++i) {
    const bool anomalous = i % anomalous_every == anomalous_every - 1;
    images.push_back({.path = prefix + category + "/" + std::to_string(i) + ".png",
                      .category = category,
                      .split = i % 2 ? "test" : "train",
                      .anomalous = anomalous,
                      .defect = anomalous ? "crack" : "good",
                      .score = float(i) / 3,
                      .verdict = anomalous ? "anomalous" : "normal",
                      .embedding = random_vector(rng, dim)});
  }
  return images;
}

// In double precision: the reference the stores' rankings are checked against.
inline double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

#ifdef PATCHVEC_SOURCE_DIR
// $PATCHVEC_TEST_DB, else what `scripts/pgvector-server.sh url` prints ("" when it is not running).
inline std::string test_server_url() {
  if (const char* url = std::getenv("PATCHVEC_TEST_DB")) return url;
  const std::string command = std::string(PATCHVEC_SOURCE_DIR) + "/scripts/pgvector-server.sh url";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::array<char, 512> buffer{};
  std::string out;
  while (std::fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
  ::pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}
#endif

}  // namespace pv::testing
