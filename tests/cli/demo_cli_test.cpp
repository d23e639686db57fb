// patchvec synth and patchvec demo as a user runs them.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/run.h"
#include "testing.h"

namespace pv {
namespace {

// Image AUROC floors for `demo --quick` with the random, BatchNorm-calibrated backbone, a little
// under what was measured (image 0.70 / 0.88 / 0.89, pixel 0.84 / 0.90 / 0.92 for grid, leather,
// tile when written): an accuracy regression fails the build, the noise of 20 test images does not.
struct Floor {
  const char* category;
  double image_auroc;
  double pixel_auroc;
};
constexpr Floor kFloors[] = {{"grid", 0.55, 0.75}, {"leather", 0.7, 0.8}, {"tile", 0.65, 0.8}};

TEST(DemoCli, QuickRunsEndToEndAboveTheAccuracyFloors) {
  testing::TempDir dir;
  const auto summary_path = dir / "summary.json";
  // No ImageNet weights in the cache, and a download that fails at once: the demo falls back to
  // the random backbone with one warning.
  const testing::ScopedEnv cache("XDG_CACHE_HOME", (dir / "cache").string());
  const testing::ScopedEnv online("PATCHVEC_OFFLINE", std::nullopt);
  const testing::ScopedEnv mirror("PATCHVEC_WEIGHTS_MIRROR",
                                  "http://127.0.0.1:" + std::to_string(testing::closed_port()));
  const CommandResult run = patchvec("demo --quick --out " + (dir / "demo").string() + " --json " +
                                     summary_path.string());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("no ImageNet weights for wide_resnet50_2 (cannot connect to "
                            "127.0.0.1"),
            std::string::npos)
      << run.output;
  const std::string warning = "patchvec: warning: no pretrained weights";
  const auto first = run.output.find(warning);
  EXPECT_NE(first, std::string::npos) << run.output;
  EXPECT_EQ(run.output.find(warning, first + 1), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("with weights: random backbone (ImageNet weights unavailable)"),
            std::string::npos)
      << run.output;
  // The table and the search session are printed for people.
  EXPECT_NE(run.output.find("image AUROC"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("Query: queries/"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("pictures/"), std::string::npos) << run.output;

  const auto summary = nlohmann::json::parse(testing::read_text(summary_path));
  ASSERT_EQ(summary["categories"].size(), 3u);
  for (const Floor& floor : kFloors) {
    const auto it = std::find_if(summary["categories"].begin(), summary["categories"].end(),
                                 [&](const auto& c) { return c["category"] == floor.category; });
    ASSERT_NE(it, summary["categories"].end()) << floor.category;
    EXPECT_GE((*it)["image_auroc"].get<double>(), floor.image_auroc) << floor.category;
    EXPECT_GE((*it)["pixel_auroc"].get<double>(), floor.pixel_auroc) << floor.category;
    const auto pictures = dir / "demo" / "pictures";
    EXPECT_TRUE(std::filesystem::exists(pictures / (std::string(floor.category) + "_roc.png")));
    EXPECT_FALSE(std::filesystem::is_empty(pictures / floor.category));
    EXPECT_TRUE(
        std::filesystem::exists(dir / "demo" / "models" / (std::string(floor.category) + ".pvm")));
  }
  EXPECT_FALSE(summary["pretrained"].get<bool>());
  EXPECT_EQ(summary["weights"], "random backbone (ImageNet weights unavailable)");

  // One normal and one defective query per category, each answered the way the issue asks.
  ASSERT_EQ(summary["queries"].size(), 6u);
  for (const auto& query : summary["queries"]) {
    const std::string verdict = query["verdict"];
    ASSERT_TRUE(verdict == "normal" || verdict == "anomalous") << query.dump();
    ASSERT_FALSE(query["matches"].empty()) << query.dump();
    EXPECT_LE(query["matches"].size(), 10u);
    double previous = 2.0;
    for (const auto& match : query["matches"]) {
      EXPECT_EQ(match["category"], query["category"]);
      EXPECT_EQ(match["label"], verdict == "normal" ? "normal" : "anomalous") << query.dump();
      EXPECT_LE(match["similarity"].get<double>(), previous);
      previous = match["similarity"].get<double>();
    }
    EXPECT_EQ(query["report_id"].is_null(), verdict == "normal") << query.dump();
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "demo" / "models" / "store.pvs"));

  // A second run reuses the dataset.
  const CommandResult again =
      patchvec("demo --quick --weights random --out " + (dir / "demo").string());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("reusing"), std::string::npos) << again.output;
  EXPECT_EQ(again.output.find("no ImageNet weights"), std::string::npos) << again.output;
}

TEST(SynthCli, WritesTheLayoutAndExplainsItself) {
  testing::TempDir dir;
  const CommandResult run = patchvec("synth --out " + (dir / "data").string() +
                                     " --categories leather --train 2 --test-good 1 --test-bad 1 "
                                     "--size 64 --seed 3");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "data" / "leather" / "train" / "good" / "001.png"));
  EXPECT_TRUE(
      std::filesystem::exists(dir / "data" / "leather" / "ground_truth" / "poke" / "000_mask.png"));
  EXPECT_TRUE(std::filesystem::exists(dir / "data" / "synth.json"));

  const CommandResult help = patchvec("synth --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("metal_contamination"), std::string::npos) << help.output;

  const CommandResult bad = patchvec("synth --out " + (dir / "x").string() + " --categories wood");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("unknown synthetic category 'wood'"), std::string::npos) << bad.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "x" / "wood"));
}

}  // namespace
}  // namespace pv
