// A small seeded generator whose sequence is fixed by this file alone (the standard library's
// distributions differ between implementations), so a seed gives the same images everywhere.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string_view>

namespace pv::synth {

// splitmix64: tiny, fast, and good enough for textures.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double low, double high) { return low + (high - low) * uniform(); }
  int integer(int low, int high) {  // inclusive
    return low + static_cast<int>(uniform() * (high - low + 1));
  }
  bool chance(double p) { return uniform() < p; }
  double normal() {  // Box-Muller
    const double u = 1.0 - uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * uniform());
  }

 private:
  std::uint64_t state_;
};

// Mixes a text into a seed (FNV-1a, then splitmix64), to derive independent streams.
inline std::uint64_t mix_seed(std::uint64_t seed, std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (const char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return Rng(h).next();
}

}  // namespace pv::synth
