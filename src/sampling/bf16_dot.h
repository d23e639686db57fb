// Dot products of bfloat16 vectors, accumulated in float32, on the best instructions the CPU has:
// AVX512-BF16 (32 products per instruction), else AVX-512 or AVX2 after widening, else scalar.
#pragma once

#include <cstdint>

namespace pv::sampling {

using Bf16 = std::uint16_t;  // the bit pattern of a bfloat16

using Bf16DotFn = float (*)(const Bf16* a, const Bf16* b, std::int64_t dim);

// The fastest implementation for this CPU, chosen once.
Bf16DotFn bf16_dot();

// The portable one, for tests.
float bf16_dot_scalar(const Bf16* a, const Bf16* b, std::int64_t dim);

}  // namespace pv::sampling
