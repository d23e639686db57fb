// The number format a backbone computes in and a memory bank is kept in. fp32 is exact (the
// parity with torchvision and anomalib); bf16 and int8 trade a measured, recorded difference in
// scores for speed on CPUs that multiply them natively (see docs/precision.md).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pv {

enum class Precision {
  kFloat32,   // exact: float32 convolutions, float32 bank
  kBFloat16,  // bfloat16 convolutions (float32 accumulation), bank in bfloat16
  kInt8,      // int8 convolutions (per-channel weight scales, calibrated activation ranges),
              // bank in bfloat16
};

// "fp32", "bf16", "int8": the one string form (CLI, model files, JSON).
const char* precision_name(Precision precision);

// The precision `name` spells, or nullopt for "auto" (the caller chooses: see
// choose_precision()); throws pv::Error naming `setting` for anything else.
std::optional<Precision> parse_precision(std::string_view name, std::string_view setting);

// Why this CPU (and oneDNN's ISA cap, ONEDNN_MAX_CPU_ISA) cannot run `precision` natively, in
// words; empty when it can. fp32 always can. bf16 needs AVX512-BF16 or AMX-BF16 (oneDNN refuses
// bfloat16 convolutions below AVX512_CORE_BF16); int8 needs AVX512-VNNI, AVX-VNNI or AMX-INT8, or
// AVX2's byte multiply-adds (see kInt8StemWeightBits). Thread-safe.
std::string precision_unsupported(Precision precision);

// Throws pv::Error naming `setting` when precision_unsupported() is not empty: PatchVec refuses
// a reduced precision it would only emulate (see docs/precision.md). bf16 on a CPU without AMX
// runs, with one warning that it is slower than fp32 there.
void require_precision(Precision precision, std::string_view setting);

// The bits of the int8 stem's weights (symmetric, one scale per output channel; every other
// convolution's have 8). Below VNNI, oneDNN's int8 products are AVX2's byte multiply-adds
// (vpmaddubsw), which add each pair of u8 x s8 products in saturating int16: 255 x 127 x 2
// overflows it, 255 x 63 x 2 does not. The stem's input, the image, fills the byte range (with 8
// bits 0.4 % of its outputs came out up to 8 steps wrong on synthetic tiles), so its weights have
// 7 and it is exact on any CPU. The other inputs are ReLU outputs, which rarely reach the top half
// of their range in two neighbouring channels at once (7 of 54 million outputs on the same images,
// docs/precision.md): with 8 bits they are exact with VNNI and all but exact without.
inline constexpr int kInt8StemWeightBits = 7;

// Why this CPU cannot run an int8 model whose stem weights have `stem_weight_bits` bits (models
// written before kInt8StemWeightBits have 8, which saturate without VNNI); empty when it can.
// Thread-safe.
std::string int8_stem_unsupported(int stem_weight_bits);

// What "auto" means on this CPU: bf16 with AMX (as fast as int8 there, and closer to fp32), else
// int8 (VNNI, or AVX2's byte multiply-adds: about twice fp32's speed either way), else fp32. The
// agreement check may still send a model back to fp32 (pv::train_category).
Precision auto_precision();

}  // namespace pv
