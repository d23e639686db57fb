#include <mutex>

#include <patchvec/error.h>
#include <patchvec/log.h>
#include <patchvec/precision.h>
#include <patchvec/system.h>

namespace pv {

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::kBFloat16:
      return "bf16";
    case Precision::kInt8:
      return "int8";
    case Precision::kFloat32:
      break;
  }
  return "fp32";
}

std::optional<Precision> parse_precision(std::string_view name, std::string_view setting) {
  if (name == "auto") return std::nullopt;
  for (const Precision p : {Precision::kFloat32, Precision::kBFloat16, Precision::kInt8}) {
    if (name == precision_name(p)) return p;
  }
  throw Error(std::string(setting) + ": unknown precision '" + std::string(name) +
              "' (fp32, bf16, int8 or auto)");
}

std::string precision_unsupported(Precision precision) {
  switch (precision) {
    case Precision::kBFloat16:
      if (cpu_has_native_bf16()) return "";
      return "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX-BF16), or "
             "ONEDNN_MAX_CPU_ISA keeps oneDNN below them";
    case Precision::kInt8:
      if (cpu_has_native_int8() || cpu_has_avx2_int8()) return "";
      return "this CPU has neither int8 dot products (AVX512-VNNI, AVX-VNNI or AMX-INT8) nor "
             "AVX2's byte multiply-adds, or ONEDNN_MAX_CPU_ISA keeps oneDNN below AVX2";
    case Precision::kFloat32:
      break;
  }
  return "";
}

void require_precision(Precision precision, std::string_view setting) {
  const std::string why = precision_unsupported(precision);
  if (why.empty()) {
    if (precision == Precision::kBFloat16 && !cpu_has_amx()) {
      static std::once_flag once;
      std::call_once(once, [] {
        log::warn(
            "bf16 without AMX runs at about 1.4x fp32's time with this libtorch's oneDNN "
            "(AVX512-BF16 alone): int8, or auto, is the faster choice on this CPU");
      });
    }
    return;
  }
  throw Error(std::string(setting) + " " + precision_name(precision) + ": " + why +
              (precision == Precision::kBFloat16
                   ? "; emulated it would be slower than fp32, so PatchVec refuses it"
                   : "; PatchVec runs int8 only on those") +
              ": use fp32 or auto");
}

std::string int8_stem_unsupported(int stem_weight_bits) {
  if (stem_weight_bits <= kInt8StemWeightBits || cpu_has_native_int8()) return "";
  return "its int8 stem has " + std::to_string(stem_weight_bits) +
         "-bit weights, which int8 without VNNI (AVX2's byte multiply-adds, or ONEDNN_MAX_CPU_ISA "
         "below VNNI) would saturate; int8 models trained since have 7 and run on any such CPU";
}

Precision auto_precision() {
  // With AMX, bf16 is about as fast as int8 (oneDNN's quantised convolutions in libtorch 1.13
  // do not use its int8 tiles) and twice as close to fp32; without it, bf16 is slower than fp32
  // and int8 is the one that pays, with VNNI or on AVX2 alone (docs/precision.md).
  if (cpu_has_amx() && precision_unsupported(Precision::kBFloat16).empty()) {
    return Precision::kBFloat16;
  }
  if (precision_unsupported(Precision::kInt8).empty()) return Precision::kInt8;
  return Precision::kFloat32;
}

}  // namespace pv
