#include <cstdlib>

#include <gtest/gtest.h>

#include <patchvec/system.h>

namespace pv {
namespace {

// oneDNN refuses bf16 products below AVX512_CORE_BF16 however capable the CPU is: a capped
// instruction set must turn the bf16 paths off.
TEST(Cpu, AnInstructionSetCapOnOneDnnTurnsBf16Off) {
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  ::unsetenv("DNNL_MAX_CPU_ISA");
  const bool native = cpu_has_native_bf16();
  ::setenv("ONEDNN_MAX_CPU_ISA", "AVX2", 1);
  EXPECT_FALSE(cpu_has_native_bf16());
  ::setenv("ONEDNN_MAX_CPU_ISA", "avx512_core", 1);
  EXPECT_FALSE(cpu_has_native_bf16());
  ::setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", 1);
  EXPECT_EQ(cpu_has_native_bf16(), native);
  ::setenv("ONEDNN_MAX_CPU_ISA", "ALL", 1);
  EXPECT_EQ(cpu_has_native_bf16(), native);
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  ::setenv("DNNL_MAX_CPU_ISA", "AVX2", 1);  // the older name
  EXPECT_FALSE(cpu_has_native_bf16());
  ::unsetenv("DNNL_MAX_CPU_ISA");
  EXPECT_EQ(cpu_has_native_bf16(), native);
}

}  // namespace
}  // namespace pv
