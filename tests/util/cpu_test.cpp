#include <cstdlib>

#include <gtest/gtest.h>

#include <patchvec/error.h>
#include <patchvec/precision.h>
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

// int8 runs with VNNI or on AVX2's byte multiply-adds: a cap at AVX2 turns VNNI off (and with it
// stems of 8-bit weights) but not int8, a cap below AVX2 turns int8 off, and then the precisions a
// CPU runs say why not and auto falls back to fp32.
TEST(Cpu, AnInstructionSetCapTurnsVnniAndInt8Off) {
  ::unsetenv("DNNL_MAX_CPU_ISA");
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  const bool native = cpu_has_native_int8();
  const bool avx2 = cpu_has_avx2();
  EXPECT_TRUE(!native || cpu_has_avx2_int8());
  ::setenv("ONEDNN_MAX_CPU_ISA", "AVX2", 1);
  EXPECT_FALSE(cpu_has_native_int8());
  EXPECT_FALSE(cpu_has_amx());
  EXPECT_EQ(cpu_has_avx2_int8(), avx2);
  EXPECT_EQ(precision_unsupported(Precision::kInt8).empty(), avx2);
  EXPECT_EQ(int8_stem_unsupported(kInt8StemWeightBits), "");
  EXPECT_NE(int8_stem_unsupported(8).find("saturate"), std::string::npos);
  EXPECT_EQ(auto_precision(), avx2 ? Precision::kInt8 : Precision::kFloat32);
  ::setenv("ONEDNN_MAX_CPU_ISA", "avx", 1);
  EXPECT_FALSE(cpu_has_avx2_int8());
  EXPECT_EQ(auto_precision(), Precision::kFloat32);
  EXPECT_NE(precision_unsupported(Precision::kInt8).find("VNNI"), std::string::npos);
  EXPECT_NE(precision_unsupported(Precision::kInt8).find("AVX2"), std::string::npos);
  EXPECT_NE(precision_unsupported(Precision::kBFloat16).find("BF16"), std::string::npos);
  EXPECT_EQ(precision_unsupported(Precision::kFloat32), "");
  try {
    require_precision(Precision::kInt8, "--precision");
    ADD_FAILURE() << "int8 accepted below AVX2";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--precision int8"), std::string::npos) << e.what();
  }
  ::setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI", 1);
  EXPECT_EQ(cpu_has_native_int8(), native);
  EXPECT_FALSE(cpu_has_native_bf16());
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  EXPECT_EQ(cpu_has_native_int8(), native);
  EXPECT_EQ(int8_stem_unsupported(8).empty(), native);
  EXPECT_EQ(auto_precision(), cpu_has_amx() ? Precision::kBFloat16
                              : avx2        ? Precision::kInt8
                                            : Precision::kFloat32);
  ::setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI", 1);  // a Cascade Lake: int8 only
  EXPECT_EQ(auto_precision(), avx2 ? Precision::kInt8 : Precision::kFloat32);
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
}

TEST(Precision, NamesAndParsing) {
  for (const Precision p : {Precision::kFloat32, Precision::kBFloat16, Precision::kInt8}) {
    EXPECT_EQ(parse_precision(precision_name(p), "--precision"), p);
  }
  EXPECT_EQ(parse_precision("auto", "--precision"), std::nullopt);
  try {
    parse_precision("fp16", "--precision");
    ADD_FAILURE() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "--precision: unknown precision 'fp16' (fp32, bf16, int8 or auto)");
  }
}

}  // namespace
}  // namespace pv
