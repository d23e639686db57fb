#include <cctype>
#include <cstdlib>
#include <string>

#include <cpuid.h>
#include <dlfcn.h>

#include <patchvec/system.h>

namespace pv {

namespace {

// oneDNN's instruction sets may be capped by the user (ONEDNN_MAX_CPU_ISA, or DNNL_MAX_CPU_ISA
// before it); empty when they are not.
std::string onednn_cap() {
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (cap == nullptr) cap = std::getenv("DNNL_MAX_CPU_ISA");
  std::string isa(cap == nullptr ? "" : cap);
  for (char& c : isa) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return isa == "ALL" ? "" : isa;
}

// Below AVX512_CORE_BF16 oneDNN refuses to build bf16 products at all.
bool onednn_allows_bf16() {
  const std::string isa = onednn_cap();
  return isa.empty() || isa.find("BF16") != std::string::npos ||
         isa.find("AMX") != std::string::npos || isa.find("FP16") != std::string::npos ||
         isa.starts_with("AVX10");
}

// oneDNN's ISAs from AVX2_VNNI and AVX512_CORE_VNNI up use VNNI's int8 dot products.
bool onednn_allows_vnni() {
  const std::string isa = onednn_cap();
  return isa.empty() || isa.find("VNNI") != std::string::npos || onednn_allows_bf16();
}

// oneDNN's int8 kernels below VNNI use AVX2's (or AVX-512's) byte multiply-adds; SSE4.1 and AVX
// are the only caps below them.
bool onednn_allows_avx2() {
  const std::string isa = onednn_cap();
  return isa != "SSE41" && isa != "AVX";
}

struct CpuidBits {
  bool avx512f = false, avx512_bf16 = false, avx512_vnni = false, avx_vnni = false;
  bool amx_bf16 = false, amx_int8 = false;
};

CpuidBits cpuid_bits() {
  // From CPUID itself: clang 14's __builtin_cpu_supports knows none of these names.
  __builtin_cpu_init();
  CpuidBits bits;
  bits.avx512f = __builtin_cpu_supports("avx512f");  // also checks that the OS enabled it
  const bool avx2 = __builtin_cpu_supports("avx2");
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    bits.avx512_vnni = bits.avx512f && (c & (1u << 11));
    bits.amx_bf16 = bits.avx512f && (d & (1u << 22));
    bits.amx_int8 = bits.avx512f && (d & (1u << 25));
  }
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    bits.avx_vnni = avx2 && (a & (1u << 4));
    bits.avx512_bf16 = bits.avx512f && (a & (1u << 5));
  }
  return bits;
}

}  // namespace

bool cpu_has_avx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2") != 0;
  return avx2;
}

bool cpu_has_avx512_vnni() {
  static const bool vnni =
      __builtin_cpu_supports("avx512f") != 0 && __builtin_cpu_supports("avx512vnni") != 0;
  return vnni;
}

bool cpu_has_native_bf16() {
  if (!onednn_allows_bf16()) return false;
  const CpuidBits bits = cpuid_bits();
  return bits.avx512_bf16 || bits.amx_bf16;
}

bool cpu_has_amx() {
  const std::string isa = onednn_cap();
  if (!isa.empty() && isa.find("AMX") == std::string::npos) return false;
  const CpuidBits bits = cpuid_bits();
  return bits.amx_bf16 && bits.amx_int8;
}

bool cpu_has_native_int8() {
  if (!onednn_allows_vnni()) return false;
  const CpuidBits bits = cpuid_bits();
  return bits.avx512_vnni || bits.avx_vnni || bits.amx_int8;
}

bool cpu_has_avx2_int8() {
  return cpu_has_avx2() && onednn_allows_avx2();
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

std::string switch_blas_core() {
  const std::string core = better_blas_core();
  if (core.empty()) return "";
  // OpenBLAS's own selection, run again: quit forgets the kernels chosen at load, init picks
  // them anew and reads OPENBLAS_CORETYPE as it does at load.
  using Call = void (*)();
  const auto quit = reinterpret_cast<Call>(::dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  const auto init = reinterpret_cast<Call>(::dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (quit == nullptr || init == nullptr) return "";  // not a dynamic-architecture build
  ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  quit();
  init();
  return blas_core_name();
}

}  // namespace pv
