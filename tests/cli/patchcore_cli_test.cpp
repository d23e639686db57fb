// train, eval and predict as a user runs them, on the PatchCore fixture category.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <patchvec/image.h>
#include <patchvec/npy.h>
#include <patchvec/precision.h>
#include <patchvec/system.h>

#include "cli/run.h"
#include "testing.h"

namespace pv {
namespace {

std::string data() {
  return (testing::fixture_dir() / "patchcore" / "data").string();
}
std::string weights() {
  return (testing::fixture_dir() / "patchcore" / "resnet18.safetensors").string();
}

class PatchCoreCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>();
    const CommandResult train =
        patchvec("train --data " + data() + " --category synthetic --backbone resnet18 --weights " +
                 weights() + " --out " + (*dir_ / "models").string() + " --json " +
                 (*dir_ / "train.json").string());
    train_output_ = train.output;
    train_exit_ = train.exit_code;
  }
  static void TearDownTestSuite() { dir_.reset(); }

  static std::string model() { return (*dir_ / "models" / "synthetic.pvm").string(); }

  static std::unique_ptr<testing::TempDir> dir_;
  static std::string train_output_;
  static int train_exit_;
};

std::unique_ptr<testing::TempDir> PatchCoreCli::dir_;
std::string PatchCoreCli::train_output_;
int PatchCoreCli::train_exit_ = -1;

TEST_F(PatchCoreCli, TrainWritesTheModelAndPrintsTheTable) {
  ASSERT_EQ(train_exit_, 0) << train_output_;
  EXPECT_TRUE(std::filesystem::exists(model()));
  EXPECT_NE(train_output_.find("image AUROC"), std::string::npos) << train_output_;
  EXPECT_NE(train_output_.find("synthetic"), std::string::npos);
  const auto summary = nlohmann::json::parse(testing::read_text(*dir_ / "train.json"));
  ASSERT_EQ(summary.size(), 1u);
  EXPECT_EQ(summary[0]["category"], "synthetic");
  EXPECT_EQ(summary[0]["fit"]["bank_size"], 470);  // int(6 * 784 * 0.1)
  EXPECT_TRUE(summary[0]["thresholds"]["image"].is_number());
  EXPECT_TRUE(summary[0]["fit"]["timings"]["coreset_s"].is_number());
}

TEST_F(PatchCoreCli, EvalJsonHasTheAgreedFields) {
  ASSERT_EQ(train_exit_, 0);
  const auto overlays = *dir_ / "pictures";
  const CommandResult run = patchvec(
      "eval --model " + model() + " --data " + data() + " --json - --overlays " + overlays.string(),
      /*merge_stderr=*/false);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto report = nlohmann::json::parse(run.output);  // stdout is JSON alone
  EXPECT_EQ(report["category"], "synthetic");
  for (const char* field :
       {"image_auroc", "pixel_auroc", "pro", "image_threshold", "pixel_threshold"}) {
    EXPECT_TRUE(report[field].is_number()) << field;
  }
  EXPECT_DOUBLE_EQ(report["image_auroc"].get<double>(), 1.0);  // the blobs are obvious
  const auto& image = report["images"]["test/blob/001.png"];
  EXPECT_TRUE(image["score"].is_number());
  EXPECT_TRUE(image["normalized"].is_number());
  EXPECT_EQ(image["label"], 1);
  EXPECT_EQ(image["defect"], "blob");
  EXPECT_EQ(report["images"]["test/good/000.png"]["label"], 0);
  EXPECT_TRUE(report["timings"]["search_s"].is_number());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(overlays / "synthetic"), {}), 6);
  EXPECT_TRUE(std::filesystem::exists(overlays / "synthetic_roc.png"));
}

TEST_F(PatchCoreCli, PredictGivesVerdictsAndHeatmaps) {
  ASSERT_EQ(train_exit_, 0);
  const auto heatmaps = *dir_ / "heatmaps";
  const CommandResult run =
      patchvec("predict --json --model " + model() + " " + data() + "/synthetic/test/blob " +
                   data() + "/synthetic/test/good/000.png --heatmap " + heatmaps.string(),
               /*merge_stderr=*/false);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto result = nlohmann::json::parse(run.output);
  ASSERT_EQ(result["predictions"].size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(result["predictions"][i]["verdict"], "anomalous") << i;
  EXPECT_EQ(result["predictions"][3]["verdict"], "normal");
  EXPECT_TRUE(std::filesystem::exists(result["predictions"][0]["heatmap"].get<std::string>()));
  EXPECT_TRUE(result["timings"]["ms_per_image"]["backbone"].is_number());
}

// A user may cap oneDNN's instruction set (ONEDNN_MAX_CPU_ISA): the search then keeps to float32
// products instead of failing on bf16 ones oneDNN no longer builds; the scores are the same.
TEST_F(PatchCoreCli, PredictUnderACappedInstructionSet) {
  ASSERT_EQ(train_exit_, 0);
  const std::string arguments =
      "predict --json --model " + model() + " " + data() + "/synthetic/test/blob/000.png";
  const CommandResult usual = patchvec(arguments, /*merge_stderr=*/false);
  const CommandResult capped = run_program(
      std::string("ONEDNN_MAX_CPU_ISA=AVX2 ") + PATCHVEC_BINARY, arguments, /*merge_stderr=*/false);
  ASSERT_EQ(usual.exit_code, 0) << usual.output;
  ASSERT_EQ(capped.exit_code, 0) << capped.output;
  const auto score = [](const CommandResult& run) {
    return nlohmann::json::parse(run.output)["predictions"][0]["score"].get<double>();
  };
  EXPECT_NEAR(score(capped), score(usual), 1e-4 * score(usual));
}

// --precision: a reduced-precision model trained, checked and reported. On a CPU without the
// instructions (capped below AVX2 here) an explicit bf16 or int8 is refused in one line, auto
// picks fp32 silently, and a reduced model runs in fp32 with one warning. Capped to AVX2 (no
// VNNI, no bfloat16), bf16 is refused and int8 runs on AVX2's byte multiply-adds.
TEST_F(PatchCoreCli, PrecisionsAndTheAvx2CappedPath) {
  ASSERT_EQ(train_exit_, 0);
  const std::string train = "train --data " + data() +
                            " --category synthetic --backbone resnet18 --weights " + weights() +
                            " --no-evaluation --json - --out ";
  const std::string image = " " + data() + "/synthetic/test/good/000.png";
  const std::string below = std::string("ONEDNN_MAX_CPU_ISA=AVX ") + PATCHVEC_BINARY;
  const std::string avx2 = std::string("ONEDNN_MAX_CPU_ISA=AVX2 ") + PATCHVEC_BINARY;
  for (const char* precision : {"bf16", "int8"}) {
    const CommandResult refused =
        run_program(below, train + (*dir_ / "capped").string() + " --precision " + precision);
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_NE(refused.output.find(std::string("--precision ") + precision + ": this CPU has n"),
              std::string::npos)
        << refused.output;
    EXPECT_FALSE(std::filesystem::exists(*dir_ / "capped"));
  }
  const CommandResult automatic =
      run_program(below, train + (*dir_ / "auto").string() + " --precision auto", false);
  ASSERT_EQ(automatic.exit_code, 0) << automatic.output;
  EXPECT_EQ(nlohmann::json::parse(automatic.output)[0]["fit"]["precision"], "fp32");
  if (cpu_has_avx2()) {
    const CommandResult bf16 =
        run_program(avx2, train + (*dir_ / "capped").string() + " --precision bf16");
    EXPECT_NE(bf16.exit_code, 0);
    EXPECT_NE(bf16.output.find("--precision bf16: this CPU has no"), std::string::npos)
        << bf16.output;
    const CommandResult int8 =
        run_program(avx2, train + (*dir_ / "avx2").string() + " --precision auto", false);
    ASSERT_EQ(int8.exit_code, 0) << int8.output;
    EXPECT_EQ(nlohmann::json::parse(int8.output)[0]["fit"]["precision"], "int8");
    const CommandResult predicted =
        run_program(avx2, "predict --model " + (*dir_ / "avx2" / "synthetic.pvm").string() + image);
    ASSERT_EQ(predicted.exit_code, 0) << predicted.output;
    EXPECT_NE(predicted.output.find("trained in int8, running in int8"), std::string::npos)
        << predicted.output;
  }

  const Precision reduced = auto_precision();
  if (reduced == Precision::kFloat32) GTEST_SKIP() << "this CPU runs no reduced precision";
  const std::string name = precision_name(reduced);
  const CommandResult trained = patchvec(
      train + (*dir_ / "reduced").string() + " --precision " + name, /*merge_stderr=*/false);
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const auto fit = nlohmann::json::parse(trained.output)[0]["fit"];
  EXPECT_EQ(fit["precision"], name);
  EXPECT_EQ(fit["agreement"]["verdict_flips"], 0);
  EXPECT_GT(fit["timings"]["calibrate_s"].get<double>(), 0);  // the cross-fit, accounted
  const std::string reduced_model = (*dir_ / "reduced" / "synthetic.pvm").string();
  const CommandResult predicted = patchvec("predict --model " + reduced_model + image);
  ASSERT_EQ(predicted.exit_code, 0) << predicted.output;
  EXPECT_NE(predicted.output.find("precision: trained in " + name + ", running in " + name +
                                  "; agreement with fp32 at training: max score difference"),
            std::string::npos)
      << predicted.output;
  const CommandResult fallback = run_program(below, "predict --model " + reduced_model + image);
  ASSERT_EQ(fallback.exit_code, 0) << fallback.output;
  EXPECT_NE(fallback.output.find("trained in " + name + ", runs in fp32 here: this CPU has n"),
            std::string::npos)
      << fallback.output;
  const CommandResult refused =
      run_program(below, "predict --precision " + name + " --model " + reduced_model + image);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("this CPU has n"), std::string::npos) << refused.output;
}

TEST_F(PatchCoreCli, PredictWritesMapsAsNumbers) {
  ASSERT_EQ(train_exit_, 0);
  const auto maps = *dir_ / "maps";
  const std::string image = data() + "/synthetic/test/blob/000.png";
  const CommandResult run =
      patchvec("predict --json --model " + model() + " " + image + " --maps " + maps.string(),
               /*merge_stderr=*/false);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto result = nlohmann::json::parse(run.output);
  EXPECT_EQ(result["threshold_method"], "false_alarm_rate");
  EXPECT_NE(result["threshold_source"].get<std::string>().find("good images"), std::string::npos);
  const auto& p = result["predictions"][0];
  const FloatArray crop = read_npy(p["map"].get<std::string>());
  EXPECT_EQ(crop.shape, (std::vector<std::int64_t>{224, 224}));
  const FloatArray original = read_npy(p["map_original"].get<std::string>());
  const ImageHeader header = read_image_header(std::filesystem::path(image));
  ASSERT_EQ(original.shape, (std::vector<std::int64_t>{header.height, header.width}));
  // The border the centre crop cut away is NaN; the inside holds the map's values.
  const auto at = [&](int y, int x) { return original.values[y * header.width + x]; };
  EXPECT_TRUE(std::isnan(at(0, 0)));
  EXPECT_TRUE(std::isnan(at(header.height - 1, header.width / 2)));
  EXPECT_FALSE(std::isnan(at(header.height / 2, header.width / 2)));
  const float crop_max = *std::max_element(crop.values.begin(), crop.values.end());
  float original_max = 0;
  for (const float v : original.values) {
    if (!std::isnan(v)) original_max = std::max(original_max, v);
  }
  EXPECT_NEAR(original_max, crop_max, 0.05 * crop_max);
}

TEST_F(PatchCoreCli, PredictOnACorruptImageNamesIt) {
  ASSERT_EQ(train_exit_, 0);
  testing::write_text(*dir_ / "broken.png", "\x89PNG\r\n\x1a\n broken");
  const CommandResult run =
      patchvec("predict --model " + model() + " " + (*dir_ / "broken.png").string());
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("broken.png: corrupt PNG"), std::string::npos) << run.output;
}

TEST_F(PatchCoreCli, AFailedTrainLeavesNoOutputFolder) {
  const auto out = *dir_ / "never-created";
  const CommandResult run = patchvec("train -q --data " + testing::patchcore_data() +
                                     " --category nosuchcategory --out " + out.string());
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("category nosuchcategory not found"), std::string::npos) << run.output;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(PatchCoreCli, PredictReportsABadFileAndScoresTheRest) {
  ASSERT_EQ(train_exit_, 0);
  const auto folder = *dir_ / "mixed";
  std::filesystem::create_directories(folder);
  std::filesystem::copy_file(testing::patchcore_test_image("good/000.png"), folder / "a.png");
  testing::write_text(folder / "b.png", "\x89PNG\r\n\x1a\n broken");
  std::filesystem::copy_file(testing::patchcore_test_image("blob/000.png"), folder / "c.png");
  const CommandResult run = patchvec("predict -q --json --model " + model() + " " + folder.string(),
                                     /*merge_stderr=*/false);
  EXPECT_EQ(run.exit_code, 1);
  const auto result = nlohmann::json::parse(run.output);
  ASSERT_EQ(result["predictions"].size(), 3u);
  EXPECT_TRUE(result["predictions"][0]["score"].is_number());
  EXPECT_NE(result["predictions"][1]["error"].get<std::string>().find("b.png"), std::string::npos);
  EXPECT_TRUE(result["predictions"][2]["score"].is_number());
  EXPECT_EQ(result["unreadable"], 1);
  const CommandResult table = patchvec("predict --model " + model() + " " + folder.string());
  EXPECT_EQ(table.exit_code, 1);
  EXPECT_NE(table.output.find("unreadable"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("1 of 3 images could not be read"), std::string::npos)
      << table.output;
}

// An image of 1 x 1,000,000 pixels (4 KB of PNG) once made the resize allocate 3 GB, and one of
// 1 x 40,000,000 pixels 123 GB (the run aborted: the good image beside it got no score). Now its
// cost is the documented ~24 bytes a pixel, and every image is scored.
TEST_F(PatchCoreCli, ThinImagesStayWithinTheMemoryBound) {
  ASSERT_EQ(train_exit_, 0);
  Image thin{.width = 1, .height = 1'000'000};
  thin.pixels.assign(3'000'000, 0.5f);
  write_png(*dir_ / "thin.png", thin);
  const std::string images =
      (*dir_ / "thin.png").string() + " " + testing::patchcore_test_image("good/000.png");
  const CommandResult run =
      patchvec("predict -q --json --model " + model() + " " + images, /*merge_stderr=*/false);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto result = nlohmann::json::parse(run.output);
  EXPECT_TRUE(result["predictions"][0]["score"].is_number());
  EXPECT_EQ(result["predictions"][1]["verdict"], "normal");
  const MeasuredRun measured = patchvec_measured("predict -q --model " + model() + " " + images);
  EXPECT_EQ(measured.exit_code, 0);
  // ~230 MB of it is the program and the model; the image's own share is ~24 MB.
  EXPECT_LT(measured.peak_kib, 700 * 1024) << "peak " << measured.peak_kib << " KiB";
}

// Two images whose pictures would get one name (a/x_y.png and a_x/y.png are both "a_x_y"):
// refused before anything is written, naming both, instead of the second silently replacing the
// first.
TEST_F(PatchCoreCli, OutputsThatWouldCollideAreRefused) {
  ASSERT_EQ(train_exit_, 0);
  const auto folder = *dir_ / "collide";
  std::filesystem::create_directories(folder / "a");
  std::filesystem::create_directories(folder / "a_x");
  const auto first = folder / "a" / "x_y.png", second = folder / "a_x" / "y.png";
  std::filesystem::copy_file(testing::patchcore_test_image("good/000.png"), first,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(testing::patchcore_test_image("blob/000.png"), second,
                             std::filesystem::copy_options::overwrite_existing);
  for (const char* option : {"--heatmap", "--maps"}) {
    const auto out = *dir_ / ("collide-out" + std::string(option));
    const CommandResult run = patchvec("predict --model " + model() + " " + option + " " +
                                       out.string() + " " + first.string() + " " + second.string());
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_NE(run.output.find(first.string() + " and " + second.string() +
                              " would both be written as " + (out / "a_x_y").string()),
              std::string::npos)
        << run.output;
    EXPECT_FALSE(std::filesystem::exists(out)) << option;
  }
  // The same file twice is one picture, not a collision.
  const CommandResult twice =
      patchvec("predict --model " + model() + " --heatmap " + (*dir_ / "twice").string() + " " +
               second.string() + " " + second.string());
  EXPECT_EQ(twice.exit_code, 0) << twice.output;
}

// Checkpoints whose fields would make a model that does not load, or whose tensor views expand a
// few bytes into gigabytes (zero strides): one error each, no file, memory bounded.
TEST(HostileCheckpoints, AreRefusedWithinBoundedMemory) {
  testing::TempDir dir;
  const auto fixture = [](const char* name) {
    return (testing::fixture_dir() / "patchcore" / name).string();
  };
  const struct {
    const char* file;
    const char* words;
  } checkpoints[] = {
      {"patchcore_huge_bank.ckpt", "not written: it would not load (section bank"},
      {"patchcore_huge_threshold.ckpt", "not written: it would not load (field thresholds.image"},
      {"patchcore_stride_bomb.ckpt", "zero or overlapping strides"},
  };
  for (const auto& c : checkpoints) {
    const auto out = dir / c.file;
    const std::string arguments = "import-anomalib " + fixture(c.file) +
                                  " --category synthetic --threads 2 --out " + out.string();
    const CommandResult run = patchvec(arguments);
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_NE(run.output.find(c.words), std::string::npos) << run.output;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.file;
    const MeasuredRun measured = patchvec_measured(arguments);
    EXPECT_LT(measured.peak_kib, 1024 * 1024) << c.file << ": peak " << measured.peak_kib;
  }
  const std::string verify = "weights verify " + fixture("stride_bomb.pth");
  const CommandResult run = patchvec(verify);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("a view of 268435456 elements over a storage of 1"), std::string::npos)
      << run.output;
  const MeasuredRun measured = patchvec_measured(verify);
  EXPECT_LT(measured.peak_kib, 512 * 1024) << "peak " << measured.peak_kib;
}

TEST_F(PatchCoreCli, DamagedModelIsAClearError) {
  ASSERT_EQ(train_exit_, 0);
  const auto copy = *dir_ / "cut.pvm";
  std::filesystem::copy_file(model(), copy, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(copy, 1000);
  const CommandResult run =
      patchvec("predict --model " + copy.string() + " " + data() + "/synthetic/test/good/000.png");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("model file " + copy.string() + ": truncated"), std::string::npos)
      << run.output;
}

TEST(TrainCli, UnknownCategoryAndBadRatio) {
  testing::TempDir dir;
  const CommandResult missing =
      patchvec("train --data " + data() + " --category carpet --out " + dir.path().string());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("category carpet not found"), std::string::npos) << missing.output;
  const CommandResult ratio =
      patchvec("train --data " + data() + " --category synthetic --coreset-ratio 1.5 --out " +
               dir.path().string());
  EXPECT_EQ(ratio.exit_code, 2) << ratio.output;
}

}  // namespace
}  // namespace pv

namespace pv {
namespace {

// Tiles as a user asks for them: thresholds from good images (the cross-fit scores tiled images
// too), maps of the whole image, and predict/eval with another overlap than training's.
TEST(TiledCli, TrainEvalAndPredictWithTiles) {
  testing::TempDir dir;
  const CommandResult train =
      patchvec("train --data " + data() + " --category synthetic --backbone resnet18 --weights " +
               weights() + " --tile 96 --tile-overlap 16 --out " + (dir / "models").string() +
               " --json " + (dir / "train.json").string());
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("images cut into tiles of 96 px, overlap 16, scale 1"),
            std::string::npos)
      << train.output;
  const auto summary = nlohmann::json::parse(testing::read_text(dir / "train.json"));
  EXPECT_EQ(summary[0]["fit"]["tiling"]["size"], 96);
  // 6 images of 192 x 192, 9 tiles of 12 x 12 patches each.
  EXPECT_EQ(summary[0]["fit"]["train_patches"], 6 * 9 * 144);
  EXPECT_EQ(summary[0]["thresholds"]["method"], "false_alarm_rate");
  const std::string model = (dir / "models" / "synthetic.pvm").string();

  const std::string image = data() + "/synthetic/test/blob/000.png";
  const CommandResult predict = patchvec("predict --json --model " + model + " " + image +
                                             " --tile-overlap 32 --maps " + (dir / "maps").string(),
                                         /*merge_stderr=*/false);
  ASSERT_EQ(predict.exit_code, 0) << predict.output;
  const auto predictions = nlohmann::json::parse(predict.output);
  const auto& p = predictions["predictions"][0];
  // The map covers the whole image: no border is NaN.
  EXPECT_EQ(read_npy(p["map"].get<std::string>()).shape, (std::vector<std::int64_t>{192, 192}));
  const FloatArray original = read_npy(p["map_original"].get<std::string>());
  for (const float v : original.values) ASSERT_FALSE(std::isnan(v));

  // A tiled model's image costs its tiles' patch embeddings too: held to the memory of one image
  // at --max-pixels (24 bytes a pixel), from the header, before anything is decoded. 192 x 192
  // (37 kP) tiled takes ~8 MB, over the 2.4 MB of --max-pixels 100000; untiled, 0.9 MB.
  const CommandResult tight =
      patchvec("predict --json --model " + model + " " + image + " --max-pixels 100000",
               /*merge_stderr=*/false);
  EXPECT_EQ(tight.exit_code, 1) << tight.output;
  const std::string refusal = nlohmann::json::parse(tight.output)["predictions"][0]["error"];
  EXPECT_NE(refusal.find("192x192 pixels would take ~"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("(--max-pixels): raise it"), std::string::npos) << refusal;
  EXPECT_EQ(patchvec("predict --model " + model + " " + image + " --max-pixels 1000000").exit_code,
            0);

  const CommandResult eval = patchvec("eval --model " + model + " --data " + data() +
                                          " --json - --overlays " + (dir / "pictures").string(),
                                      /*merge_stderr=*/false);
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  const auto report = nlohmann::json::parse(eval.output);
  EXPECT_GT(report["image_auroc"].get<double>(), 0.9);  // the blobs are obvious
  EXPECT_GT(report["pixel_auroc"].get<double>(), 0.9);

  const CommandResult bad = patchvec("predict --model " + model + " " + image + " --tile 8");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("--tile must be between 32 and 4096"), std::string::npos) << bad.output;
}

TEST(ImportAnomalibCli, WritesAModelThatPredictsWithTheCheckpointsThresholds) {
  testing::TempDir dir;
  const std::string checkpoint =
      (testing::fixture_dir() / "patchcore" / "patchcore_v1.ckpt").string();
  const CommandResult run =
      patchvec("import-anomalib " + checkpoint + " --category synthetic --threads 2 --json --out " +
                   dir.path().string(),
               /*merge_stderr=*/false);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto summary = nlohmann::json::parse(run.output);
  EXPECT_EQ(summary["model"], (dir / "synthetic.pvm").string());
  EXPECT_EQ(summary["layout"], "anomalib 1.x");
  EXPECT_EQ(summary["bank_size"], 470);
  EXPECT_TRUE(summary["notes"].empty());

  const CommandResult predict =
      patchvec("predict --json --model " + (dir / "synthetic.pvm").string() + " " +
                   testing::patchcore_test_image("good/000.png") + " " +
                   testing::patchcore_test_image("blob/000.png"),
               /*merge_stderr=*/false);
  ASSERT_EQ(predict.exit_code, 0) << predict.output;
  const auto out = nlohmann::json::parse(predict.output);
  EXPECT_EQ(out["threshold_method"], "f1");
  EXPECT_EQ(out["predictions"][0]["verdict"], "normal");
  EXPECT_EQ(out["predictions"][1]["verdict"], "anomalous");

  const CommandResult missing =
      patchvec("import-anomalib " + checkpoint + " --out " + dir.path().string());
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("--category is required"), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace pv
