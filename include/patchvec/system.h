// What this machine and this process have: memory figures, and what the processor and the BLAS
// library under libtorch can do. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace pv {

std::int64_t physical_memory_bytes();
std::int64_t peak_memory_bytes();  // peak resident set size of this process so far

// "4G", "512M", "1.5G", "2000000000" -> bytes; throws pv::Error on anything else.
std::int64_t parse_bytes(const std::string& text);

// True when the CPU has AVX2 (and the operating system enabled it): PatchVec's int16 and search
// kernels then run vectorised (util/int16_products.h).
bool cpu_has_avx2();

// True when the CPU has AVX512-VNNI (and the operating system enabled AVX-512 state): the int16
// kernels then run on vpdpwssd, twice AVX2's width.
bool cpu_has_avx512_vnni();

// True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16): oneDNN then runs
// bf16 matrix products several times faster than float32 ones. False when ONEDNN_MAX_CPU_ISA
// (or DNNL_MAX_CPU_ISA) keeps oneDNN below AVX512_CORE_BF16.
bool cpu_has_native_bf16();

// True when the CPU has int8 dot products (AVX512-VNNI, AVX-VNNI or AMX-INT8) and oneDNN is not
// capped below them (AVX2_VNNI or AVX512_CORE_VNNI).
bool cpu_has_native_int8();

// True when the CPU has AVX2 and oneDNN is not capped below it: oneDNN's int8 convolutions then
// run on AVX2's byte multiply-adds (vpmaddubsw), about twice as fast as float32 ones, adding each
// pair of products in saturating int16 (see pv::kInt8StemWeightBits). cpu_has_native_int8()
// implies it.
bool cpu_has_avx2_int8();

// True when the CPU has AMX tiles for bf16 and int8 and oneDNN is not capped below them: where
// oneDNN's reduced-precision convolutions are several times faster than float32 ones.
bool cpu_has_amx();

// OpenBLAS's name for the kernels it chose ("SkylakeX", "Haswell", ...); empty if the BLAS is
// not OpenBLAS.
std::string blas_core_name();

// OpenBLAS 0.3.21 (Debian 12) does not know Sapphire Rapids and newer CPUs and falls back to its
// generic "Prescott" kernels, 4-5x slower than its AVX-512 ones. The choice is made when the
// library loads, so the only cure is OPENBLAS_CORETYPE in the environment of a new process.
// Returns the core type to set, or empty when nothing needs fixing.
std::string better_blas_core();

// For programs that cannot start again with OPENBLAS_CORETYPE set (a Python module, loaded into a
// process whose OpenBLAS is loaded already): makes the loaded OpenBLAS choose its kernels again
// with better_blas_core() (set in the environment too, so child processes inherit it). Returns
// the kernels' name now in use, or empty when nothing was changed (nothing to fix, or a BLAS
// without OpenBLAS's dynamic kernel choice). Call it before any BLAS work of other threads: not
// concurrent with BLAS calls.
std::string switch_blas_core();

}  // namespace pv
