// The embedded vector store: the conformance suite (store/conformance.h), and what only a file
// has: damage, forgery, its earlier forms, dead writers' leftovers, ids at the limit.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <patchvec/error.h>
#include <patchvec/store.h>

#include "store/conformance.h"
#include "store/store_testing.h"
#include "testing.h"
#include "util/sha256.h"

namespace pv::testing {

// A fresh store file per test; open() is another handle on it (another process's view).
struct EmbeddedBackend {
  testing::TempDir dir;
  std::unique_ptr<VectorStore> open() const { return open_embedded_store(dir / "store.pvs"); }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Embedded, StoreConformance, EmbeddedBackend);

}  // namespace pv::testing

namespace pv {
namespace {

TEST(EmbeddedStore, DamagedFilesAreNamedErrors) {
  testing::TempDir dir;
  const auto path = dir / "store.pvs";
  open_embedded_store(path)->add_image({.path = "a", .category = "tile", .embedding = {1, 2}});
  const std::string bytes = testing::read_text(path);
  const auto expect_error = [&](const std::string& content, const std::string& words) {
    testing::write_text(path, content);
    try {
      open_embedded_store(path);
      FAIL() << "expected an error for " << words;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path.string()), std::string::npos) << message;
      EXPECT_NE(message.find(words), std::string::npos) << message;
    }
  };
  expect_error(bytes.substr(0, bytes.size() - 10), "truncated");  // as model files say it
  std::string flipped = bytes;
  flipped[30] ^= 1;
  expect_error(flipped, "checksum");
  expect_error("hello", "not a PatchVec store");
}

TEST(EmbeddedStore, StaleTemporaryFilesOfDeadWritersAreCleaned) {
  testing::TempDir dir;
  auto store = open_embedded_store(dir / "store.pvs");
  store->add_image({.path = "a", .category = "tile", .embedding = {1, 2}});
  // What a killed `index` leaves: its temporary file, never renamed.
  testing::write_text(dir / "store.pvs.tmp-999999-12345", "half a store");
  testing::write_text(dir / "store.pvs.notes", "not ours");
  store->add_image({.path = "b", .category = "tile", .embedding = {2, 1}});
  EXPECT_FALSE(std::filesystem::exists(dir / "store.pvs.tmp-999999-12345"));
  EXPECT_TRUE(std::filesystem::exists(dir / "store.pvs.notes"));
  EXPECT_EQ(open_embedded_store(dir / "store.pvs")->image_count(), 2u);
}

// A store file with this header and these embeddings, checksummed: what a hostile writer makes.
std::string forged_store(const nlohmann::json& header, std::uint32_t dim,
                         const std::vector<float>& embeddings) {
  const std::string text = header.dump();
  std::string bytes = std::string("PVSTORE\0", 8);
  const std::uint32_t version = 1;
  const std::uint64_t length = text.size();
  bytes.append(reinterpret_cast<const char*>(&version), 4);
  bytes.append(reinterpret_cast<const char*>(&dim), 4);
  bytes.append(reinterpret_cast<const char*>(&length), 8);
  bytes += text;
  bytes.append(reinterpret_cast<const char*>(embeddings.data()), embeddings.size() * 4);
  return bytes + sha256_hex(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

TEST(EmbeddedStore, ForgedFilesAreRefused) {
  testing::TempDir dir;
  const auto path = dir / "store.pvs";
  const auto image = [](std::int64_t id, const std::string& source = "dataset") {
    return nlohmann::json{{"id", id},         {"path", "a.png"},     {"category", "tile"},
                          {"source", source}, {"split", "train"},    {"anomalous", false},
                          {"defect", "good"}, {"verdict", "normal"}, {"score", nullptr}};
  };
  const auto header = [&](nlohmann::json images, std::int64_t next = 10) {
    return nlohmann::json{{"images", std::move(images)},
                          {"reports", nlohmann::json::array()},
                          {"next_image_id", next},
                          {"next_report_id", 1}};
  };
  const auto refusal = [&](const std::string& bytes) {
    testing::write_text(path, bytes);
    try {
      open_embedded_store(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("opened");
  };
  // The control: a valid forged file opens.
  EXPECT_EQ(refusal(forged_store(header(nlohmann::json::array({image(1)})), 2, {1, 2})), "opened");
  // Images without embeddings once made every search read past them.
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1)})), 0, {}))
                .find("without embeddings"),
            std::string::npos);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1)})), 2, {1, nan}))
                .find("non-finite"),
            std::string::npos);
  EXPECT_NE(
      refusal(forged_store(header(nlohmann::json::array({image(1), image(1)})), 2, {1, 2, 3, 4}))
          .find("repeated"),
      std::string::npos);
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(5)}), 3), 2, {1, 2}))
                .find("next ids"),
            std::string::npos);
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1, "magic")})), 2, {1, 2}))
                .find("source is 'magic'"),
            std::string::npos);
  nlohmann::json later = image(1);
  later["split"] = "later";
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({later})), 2, {1, 2}))
                .find("image split is 'later'"),
            std::string::npos);
  nlohmann::json unheard = image(1);
  unheard["verdict"] = "maybe";
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({unheard})), 2, {1, 2}))
                .find("stored verdict is 'maybe'"),
            std::string::npos);
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1)})), 2, {1, 2, 3}))
                .find("size does not match"),
            std::string::npos);
  EXPECT_NE(refusal(forged_store(header(nlohmann::json::array({image(1)})), 1u << 30, {1, 2}))
                .find("dimension"),
            std::string::npos);
}

// Files written before both stores kept a report's matches in one form: the nested form of the
// embedded store's first version, and images whose verdict was "" (not scored), still read.
TEST(EmbeddedStore, FilesOfTheEarlierFormsStillRead) {
  testing::TempDir dir;
  const nlohmann::json image = {{"id", 1},           {"path", "a.png"},  {"category", "tile"},
                                {"source", "added"}, {"split", "added"}, {"anomalous", true},
                                {"defect", "crack"}, {"verdict", ""},    {"score", nullptr}};
  const nlohmann::json report = {{"id", 1},
                                 {"path", "q.png"},
                                 {"category", "tile"},
                                 {"score", 3.5},
                                 {"threshold", 2.0},
                                 {"best_similarity", 0.8},
                                 {"created", "2026-01-02T03:04:05Z"},
                                 {"matches", {{{"image", image}, {"similarity", 0.75}}}}};
  // The form that said the source beside the split: an added image of split 'test'.
  nlohmann::json labelled = image;
  labelled["id"] = 2;
  labelled["split"] = "test";
  testing::write_text(dir / "store.pvs", forged_store({{"images", {image, labelled}},
                                                       {"reports", {report}},
                                                       {"next_image_id", 3},
                                                       {"next_report_id", 2}},
                                                      2, {1, 2, 2, 1}));
  const auto store = open_embedded_store(dir / "store.pvs");
  const auto stored = store->image(1);
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->verdict, Verdict::kUnknown);
  EXPECT_EQ(store->image(2)->split, Split::kAdded);  // where it came from, recorded once
  const auto r = store->report(1);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->matches.size(), 1u);
  EXPECT_EQ(r->matches[0].image.path, "a.png");
  EXPECT_TRUE(r->matches[0].image.anomalous);
  EXPECT_EQ(r->matches[0].image.defect, "crack");
  EXPECT_DOUBLE_EQ(r->matches[0].similarity, 0.75);
  EXPECT_EQ(r->status, ReportStatus::kOpen);
  // A change rewrites the file in today's forms, which read back the same.
  store->add_image({.path = "b.png", .category = "tile", .embedding = {2, 1}});
  const auto again = open_embedded_store(dir / "store.pvs")->report(1);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->matches[0].image.path, "a.png");
  EXPECT_DOUBLE_EQ(again->matches[0].similarity, 0.75);
  EXPECT_EQ(open_embedded_store(dir / "store.pvs")->image(1)->verdict, Verdict::kUnknown);
  store->replace_dataset("tile", {});  // added images survive a re-index
  EXPECT_EQ(store->image_count("tile"), 3u);
}

// A store whose next ids are at the limit refuses the next image or report and stays usable
// (before: #9223372036854775807 was given, then every command failed on "next ids behind").
TEST(EmbeddedStore, IdsAtTheLimitAreRefusedAndTheStoreStaysUsable) {
  testing::TempDir dir;
  const auto path = dir / "store.pvs";
  const std::int64_t last = std::numeric_limits<std::int64_t>::max();
  const nlohmann::json image{
      {"id", 1},          {"path", "a.png"},    {"category", "tile"}, {"source", "dataset"},
      {"split", "train"}, {"anomalous", false}, {"defect", "good"},   {"verdict", "normal"},
      {"score", nullptr}};
  testing::write_text(path, forged_store(nlohmann::json{{"images", nlohmann::json::array({image})},
                                                        {"reports", nlohmann::json::array()},
                                                        {"next_image_id", last - 1},
                                                        {"next_report_id", last}},
                                         2, {1, 2}));
  auto store = open_embedded_store(path);
  StoredImage added{.path = "b.png", .category = "tile", .embedding = {3, 4}};
  EXPECT_EQ(store->add_image(added), last - 1);  // the last id there is
  try {
    store->add_image(added);
    ADD_FAILURE() << "an image id past the limit";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no image ids left"), std::string::npos) << e.what();
  }
  EXPECT_THROW(store->add_report({.path = "r.png", .category = "tile"}), Error);
  // Still readable, searchable and openable.
  EXPECT_EQ(open_embedded_store(path)->image_count("tile"), 2u);
  EXPECT_EQ(store->nearest(std::vector<float>{1, 2}, 5).size(), 2u);
}

}  // namespace
}  // namespace pv
