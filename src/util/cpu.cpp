#include <cctype>
#include <cstdlib>
#include <string>

#include <cpuid.h>
#include <dlfcn.h>

#include <patchvec/system.h>

namespace pv {

namespace {

// oneDNN's instruction sets may be capped by the user (ONEDNN_MAX_CPU_ISA, or DNNL_MAX_CPU_ISA
// before it); below AVX512_CORE_BF16 it refuses to build bf16 products at all.
bool onednn_allows_bf16() {
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (cap == nullptr) cap = std::getenv("DNNL_MAX_CPU_ISA");
  if (cap == nullptr || *cap == '\0') return true;
  std::string isa(cap);
  for (char& c : isa) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return isa == "ALL" || isa.find("BF16") != std::string::npos ||
         isa.find("AMX") != std::string::npos || isa.find("FP16") != std::string::npos ||
         isa.starts_with("AVX10");
}

}  // namespace

bool cpu_has_native_bf16() {
  if (!onednn_allows_bf16()) return false;
  // From CPUID itself: clang 14's __builtin_cpu_supports knows neither feature's name.
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) return false;  // also checks that the OS enabled it
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool avx512_bf16 = __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
  const bool amx_bf16 = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22));
  return avx512_bf16 || amx_bf16;
}

std::string blas_core_name() {
  // Looked up at run time: libtorch loads libblas.so.3, which need not be OpenBLAS.
  using CoreName = char* (*)();
  const auto get = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return get != nullptr ? std::string(get()) : std::string();
}

std::string better_blas_core() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return "";  // the user (or we) chose already
  const std::string core = blas_core_name();
  const bool generic = core == "Prescott" || core == "Core2" || core == "Nehalem" ||
                       core == "Barcelona" || core == "Sandybridge";
  if (!generic) return "";
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return "SKYLAKEX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "HASWELL";
  return "";
}

}  // namespace pv
