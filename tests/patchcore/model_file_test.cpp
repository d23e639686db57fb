// Model files: round trips, and every kind of damage gives one clear error naming the file.
#include "patchcore/model_file.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <patchvec/dataset.h>
#include <patchvec/error.h>
#include <patchvec/model.h>
#include <patchvec/precision.h>
#include <patchvec/system.h>

#include "testing.h"
#include "util/sha256.h"

namespace pv {
namespace {

std::filesystem::path fixtures() {
  return testing::fixture_dir() / "patchcore";
}

std::vector<std::filesystem::path> images(bool test) {
  const Category category = read_category(fixtures() / "data", "synthetic");
  std::vector<std::filesystem::path> paths;
  for (const auto& s : test ? category.test : category.train) paths.push_back(s.image);
  return paths;
}

PatchCoreOptions pretrained_options() {
  PatchCoreOptions o;
  o.embedder = {
      .backbone = "resnet18", .weights = fixtures() / "resnet18.safetensors", .threads = 2};
  return o;
}

// The fixture's model trained in int8, saved at `path`.
void save_int8_model(const std::filesystem::path& path) {
  PatchCoreOptions options = pretrained_options();
  options.precision = Precision::kInt8;
  Model::fit(images(false), "synthetic", options).save(path);
}

void expect_same(const std::vector<Prediction>& a, const std::vector<Prediction>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].score, b[i].score);
    EXPECT_EQ(a[i].map.values, b[i].map.values);
    EXPECT_EQ(a[i].verdict, b[i].verdict);
  }
}

std::string load_error(const std::filesystem::path& path, const ModelLoadOptions& options = {}) {
  try {
    Model::load(path, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class ModelFile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = std::make_unique<Model>(Model::fit(images(false), "synthetic", pretrained_options()));
    model_->set_thresholds({.image = 3.5f,
                            .pixel = 3.0f,
                            .image_min = 1,
                            .image_max = 6,
                            .pixel_min = 0.5f,
                            .pixel_max = 7,
                            .source = "test"});
  }
  static void TearDownTestSuite() { model_.reset(); }

  std::filesystem::path saved() {
    const auto path = dir_ / "synthetic.pvm";
    model_->save(path);
    return path;
  }

  // A file as earlier versions wrote it: with each bank vector's 9 nearest bank vectors.
  std::filesystem::path saved_with_neighbours() {
    const auto path = saved();
    patchcore::ModelFileContents contents = patchcore::read_model_file(path);
    contents.bank_neighbors =
        std::get<1>(at::cdist(contents.bank, contents.bank).topk(9, 1, /*largest=*/false));
    patchcore::write_model_file(path, contents);
    return path;
  }

  void damage(const std::filesystem::path& path, std::size_t offset, char value) {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(offset));
    file.put(value);
  }

  static std::unique_ptr<Model> model_;
  testing::TempDir dir_;
};

std::unique_ptr<Model> ModelFile::model_;

TEST_F(ModelFile, RoundTripGivesTheSamePredictionsAndInfo) {
  const Model loaded = Model::load(saved());
  expect_same(model_->predict(images(true)), loaded.predict(images(true)));
  const ModelInfo& info = loaded.info();
  EXPECT_EQ(info.category, "synthetic");
  EXPECT_EQ(info.backbone.backbone, "resnet18");
  EXPECT_EQ(info.bank_size, model_->info().bank_size);
  EXPECT_EQ(info.grid.dim, 384);
  ASSERT_TRUE(info.thresholds.has_value());
  EXPECT_EQ(info.thresholds->image, 3.5f);
  EXPECT_EQ(info.thresholds->source, "test");
  EXPECT_EQ(info.backbone.weights_sha256.size(), 64u);
  EXPECT_TRUE(info.pretrained);
  EXPECT_FLOAT_EQ(loaded.normalize_image(3.5f), 0.5f);
}

TEST_F(ModelFile, RandomBackboneRoundTripRestoresBatchNormStatistics) {
  PatchCoreOptions options;
  options.embedder = {.backbone = "resnet18", .seed = 99, .threads = 2};
  options.seed = 4;  // the one seed of the fit: the backbone's too
  options.sigma = 3;
  const Model model = Model::fit(images(false), "synthetic", options);
  EXPECT_FALSE(model.info().pretrained);
  model.save(dir_ / "random.pvm");
  const Model loaded = Model::load(dir_ / "random.pvm");
  expect_same(model.predict(images(true)), loaded.predict(images(true)));
  // The options the model was fitted with, as the file keeps them.
  for (const ModelInfo* info : {&model.info(), &loaded.info()}) {
    EXPECT_EQ(info->backbone.seed, 4u);
    EXPECT_EQ(info->options.seed, 4u);
    EXPECT_EQ(info->options.embedder.seed, 4u);
    EXPECT_EQ(info->options.embedder.backbone, "resnet18");
    EXPECT_EQ(info->options.embedder.image_size, 256);
    EXPECT_EQ(info->options.embedder.crop_size, 224);
    EXPECT_DOUBLE_EQ(info->options.coreset_ratio, 0.1);
    EXPECT_GT(info->options.projection_dim, 0);  // resolved from 0 (Johnson-Lindenstrauss)
    EXPECT_EQ(info->options.num_neighbors, 9);
    EXPECT_DOUBLE_EQ(info->options.sigma, 3);
    EXPECT_EQ(info->options.upsampling, MapUpsampling::kBilinear);
  }
}

TEST_F(ModelFile, WritingIsAtomic) {
  const auto path = saved();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.path()), {}), 1);
  EXPECT_NO_THROW(Model::load(path));
}

TEST_F(ModelFile, MissingFile) {
  const auto message = load_error(dir_ / "nope.pvm");
  EXPECT_NE(message.find("nope.pvm: does not exist"), std::string::npos) << message;
}

TEST_F(ModelFile, NotAModel) {
  testing::write_text(dir_ / "notes.pvm", "these are my notes, not a model at all, sorry");
  EXPECT_NE(load_error(dir_ / "notes.pvm").find("not a PatchVec model"), std::string::npos);
}

TEST_F(ModelFile, Truncated) {
  const auto path = saved();
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  const auto message = load_error(path);
  EXPECT_NE(message.find("synthetic.pvm"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST_F(ModelFile, FlippedByteInTheBank) {
  const auto path = saved();
  const auto size = std::filesystem::file_size(path);
  damage(path, size / 2, '\x55');
  EXPECT_NE(load_error(path).find("checksum mismatch"), std::string::npos);
}

TEST_F(ModelFile, FlippedByteInTheHeader) {
  const auto path = saved();
  damage(path, 40, '#');
  const auto message = load_error(path);
  EXPECT_NE(message.find("corrupt"), std::string::npos) << message;
}

TEST_F(ModelFile, WrongVersion) {
  const auto path = saved();
  damage(path, 8, '\x02');
  const auto message = load_error(path);
  EXPECT_NE(message.find("format version 2, this patchvec reads 1"), std::string::npos) << message;
}

TEST_F(ModelFile, WeightsThatChangedSinceTraining) {
  const auto path = saved();
  const auto weights = dir_ / "w.safetensors";
  std::filesystem::copy_file(fixtures() / "resnet18.safetensors", weights);
  damage(weights, std::filesystem::file_size(weights) - 3, '\x07');
  const auto message = load_error(path, {.weights = weights});
  EXPECT_NE(message.find("w.safetensors has SHA-256"), std::string::npos) << message;
  EXPECT_NE(message.find("but the model was trained with"), std::string::npos) << message;
}

TEST_F(ModelFile, WeightsThatMoved) {
  const auto path = saved();
  const auto message = load_error(path, {.weights = dir_ / "elsewhere.safetensors"});
  EXPECT_NE(message.find("elsewhere.safetensors does not exist"), std::string::npos) << message;
  const auto copy = dir_ / "copy.safetensors";
  std::filesystem::copy_file(fixtures() / "resnet18.safetensors", copy);
  EXPECT_NO_THROW(Model::load(path, {.weights = copy}));
  EXPECT_NE(load_error(path, {.weights = "random"}).find("--weights random cannot replace them"),
            std::string::npos);
}

// --- files that pass their checksum but are not valid ------------------------------------------

using Header = nlohmann::json;
using Bytes = std::vector<char>;

std::uint64_t header_length(const Bytes& bytes) {
  std::uint64_t length;
  std::memcpy(&length, bytes.data() + 16, 8);
  return length;
}

// Rewrites a model file as a hostile writer would: `edit` changes the header (kept at its padded
// length), `poke` the bytes (given the header), and the checksum is recomputed, so the file
// passes it and only validation stands between it and the scorer.
void forge(const std::filesystem::path& path, const std::function<void(Header&)>& edit,
           const std::function<void(Bytes&, const Header&)>& poke = {}) {
  std::ifstream in(path, std::ios::binary);
  Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const std::uint64_t length = header_length(bytes);
  Header header = Header::parse(std::string(bytes.data() + 24, length));
  if (edit) edit(header);
  std::string text = header.dump();
  ASSERT_LE(text.size(), length) << "the forged header does not fit";
  text.append(length - text.size(), ' ');
  std::memcpy(bytes.data() + 24, text.data(), text.size());
  // The file ends where its sections say (a writer that lies lays its bytes out accordingly),
  // unless they point beyond any plausible file.
  std::uint64_t layout_end = 24 + length;
  bool plausible = true;
  for (const auto& [name, section] : header["sections"].items()) {
    if (!section["offset"].is_number_integer() || !section["bytes"].is_number_integer() ||
        section["offset"].get<std::int64_t>() < 0) {
      plausible = false;
      continue;
    }
    const auto offset = section["offset"].get<std::uint64_t>();
    const auto size = section["bytes"].get<std::uint64_t>();
    plausible &= offset < (1u << 30) && size < (1u << 30);
    layout_end = std::max<std::uint64_t>(layout_end, (offset + size + 63) / 64 * 64);
  }
  if (plausible) bytes.resize(layout_end + 64);
  if (poke) poke(bytes, header);
  const std::size_t end = bytes.size() - 64;
  const std::string digest = sha256_hex(std::as_bytes(std::span(bytes.data(), end)));
  std::memcpy(bytes.data() + end, digest.data(), 64);
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
}

template <typename T>
void put_at(Bytes& bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

std::size_t section_offset(const Header& header, const char* name) {
  return header["sections"][name]["offset"].get<std::size_t>();
}

class ForgedModelFile : public ModelFile {
 protected:
  // The one-line error for the forged file, which must name the file.
  std::string refusal(const std::function<void(Header&)>& edit,
                      const std::function<void(Bytes&, const Header&)>& poke = {},
                      bool with_neighbours = false) {
    const auto path = with_neighbours ? saved_with_neighbours() : saved();
    forge(path, edit, poke);
    const std::string message = load_error(path);
    EXPECT_NE(message.find("synthetic.pvm"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
    EXPECT_EQ(message.find("Exception raised from"), std::string::npos) << message;
    return message;
  }
};

TEST_F(ForgedModelFile, AnUnchangedForgeStillLoads) {
  const auto path = saved();
  forge(path, {});
  EXPECT_NO_THROW(Model::load(path));
}

TEST_F(ForgedModelFile, SectionOutsideTheFile) {
  // An offset that wraps around: it once read memory before the mapping.
  EXPECT_NE(refusal([](Header& h) {
              h["sections"]["bank"]["offset"] = std::numeric_limits<std::uint64_t>::max() - 63;
            }).find("section bank"),
            std::string::npos);
  // An offset into the header: it once read the header as the bank.
  EXPECT_NE(refusal([](Header& h) {
              h["sections"]["bank"]["offset"] = 64;
            }).find("section bank: bytes 64+"),
            std::string::npos);
}

TEST_F(ForgedModelFile, NumbersOfTheWrongKind) {
  EXPECT_NE(refusal([](Header& h) {
              h["sections"]["bank"]["offset"] = 1e127;
            }).find("must be a whole number"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) {
              h["sections"]["bank"]["shape"][1] = 384.5;
            }).find("shape must be a whole number"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) {
              h["coreset"]["bank_size"] = 1e300;
            }).find("field coreset.bank_size must be a whole number"),
            std::string::npos);
}

TEST_F(ForgedModelFile, OverlappingSectionsAndStrangers) {
  EXPECT_NE(refusal(
                [](Header& h) {
                  h["sections"]["bank_neighbors"]["offset"] = h["sections"]["bank"]["offset"];
                },
                {}, /*with_neighbours=*/true)
                .find("overlap"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) { h["sections"]["bank"]["dtype"] = "F16"; }).find("dtype F16"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) {
              h["sections"]["bank"]["offset"] = 1000001;
            }).find("not 64-byte aligned"),
            std::string::npos);
}

TEST_F(ForgedModelFile, BankShapes) {
  EXPECT_NE(
      refusal([](Header& h) { h["sections"]["bank"]["shape"][0] = -1; }).find("negative dimension"),
      std::string::npos);
  EXPECT_NE(refusal([](Header& h) {
              auto& shape = h["sections"]["bank"]["shape"];
              shape = {shape[0].get<std::int64_t>() * shape[1].get<std::int64_t>()};
            }).find("shape must be [vectors, dimensions]"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) {
              h["sections"]["bank"]["shape"] = {std::int64_t{1} << 62, std::int64_t{1} << 62};
            }).find("shape overflows"),
            std::string::npos);
}

TEST_F(ForgedModelFile, NeighbourIndicesOutOfRange) {
  const auto bank_size = model_->info().bank_size;
  for (const std::int32_t index : {static_cast<std::int32_t>(bank_size) + 5, std::int32_t{-1}}) {
    const std::string message = refusal(
        {},
        [&](Bytes& bytes, const Header& h) {
          put_at(bytes, section_offset(h, "bank_neighbors") + 4 * 10, index);
        },
        /*with_neighbours=*/true);
    EXPECT_NE(message.find("bank_neighbors: indices outside"), std::string::npos) << message;
  }
}

TEST_F(ForgedModelFile, NonFiniteBank) {
  const std::string message = refusal({}, [](Bytes& bytes, const Header& h) {
    put_at(bytes, section_offset(h, "bank") + 4 * 7, std::numeric_limits<float>::quiet_NaN());
  });
  EXPECT_NE(message.find("section bank: holds NaN"), std::string::npos) << message;
  // Found by the model_file fuzz target: finite values so large that distances overflow.
  const std::string huge = refusal({}, [](Bytes& bytes, const Header& h) {
    put_at(bytes, section_offset(h, "bank") + 4 * 3, 3e37f);
  });
  EXPECT_NE(huge.find("implausibly large"), std::string::npos) << huge;
}

TEST_F(ForgedModelFile, FieldsOutOfRange) {
  const auto field = [&](const std::string& name, const nlohmann::json& value) {
    return refusal([&](Header& h) {
      nlohmann::json* node = &h;
      std::size_t begin = 0;
      for (std::size_t end; (end = name.find('.', begin)) != std::string::npos; begin = end + 1)
        node = &(*node)[name.substr(begin, end - begin)];
      (*node)[name.substr(begin)] = value;
    });
  };
  EXPECT_NE(field("scoring.sigma", -1).find("field scoring.sigma"), std::string::npos);
  EXPECT_NE(field("scoring.sigma", 500).find("field scoring.sigma"), std::string::npos);
  EXPECT_NE(field("scoring.num_neighbors", 0).find("field scoring.num_neighbors"),
            std::string::npos);
  EXPECT_NE(field("scoring.upsampling", "cubic").find("field scoring.upsampling"),
            std::string::npos);
  EXPECT_NE(field("preprocess.image_size", 1000000000).find("field preprocess.image_size"),
            std::string::npos);
  EXPECT_NE(field("preprocess.crop_size", 300).find("field preprocess.crop_size"),
            std::string::npos);
  EXPECT_NE(field("grid.dim", 999).find("999"), std::string::npos);
  EXPECT_NE(field("grid.height", 5).find("field grid is 5x"), std::string::npos);
  EXPECT_NE(field("coreset.bank_size", 3).find("section bank is"), std::string::npos);
  EXPECT_NE(field("coreset.ratio", 2.5).find("field coreset.ratio"), std::string::npos);
  EXPECT_NE(field("coreset.method", "lazy").find("field coreset.method is 'lazy'"),
            std::string::npos);
  EXPECT_NE(field("thresholds.image", "high").find("field thresholds.image"), std::string::npos);
  EXPECT_NE(field("category", "../../etc").find("category name"), std::string::npos);
  EXPECT_NE(field("backbone.name", "vgg16").find("vgg16"), std::string::npos);
  EXPECT_NE(field("backbone.weights_sha256", "xyz").find("field backbone.weights_sha256"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) {
              h["sections"]["extra"] = h["sections"]["bank"];
            }).find("unknown section 'extra'"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) { h.erase("scoring"); }).find("field scoring"),
            std::string::npos);
}

TEST_F(ForgedModelFile, WeightsAreAlwaysALocalFile) {
  // Loading a model must never download or read what its author chose: no URL, name or
  // relative path in the file, only the absolute path training recorded.
  for (const char* weights :
       {"https://example.com/resnet18-f37072fd.pth", "imagenet", "weights/resnet18.pth"}) {
    const std::string message = refusal([&](Header& h) { h["backbone"]["weights"] = weights; });
    EXPECT_NE(message.find("field backbone.weights"), std::string::npos) << message;
    EXPECT_NE(message.find("not empty or an absolute file path"), std::string::npos) << message;
  }
}

TEST_F(ForgedModelFile, WeightsFromAnotherMachineAreFoundInTheCacheByTheirHash) {
  // The model was trained where its weights lived at another path (another user's cache).
  const auto path = saved();
  const std::string gone = (dir_ / "elsewhere/resnet18.safetensors").string();
  forge(path, [&](Header& h) { h["backbone"]["weights"] = gone; });
  const testing::ScopedEnv cache("XDG_CACHE_HOME", (dir_ / "cache").string());
  const std::string missing = load_error(path);
  EXPECT_NE(missing.find(gone + " (the model was trained with it) does not exist"),
            std::string::npos)
      << missing;
  EXPECT_NE(missing.find("no file in the weights cache"), std::string::npos) << missing;
  std::filesystem::create_directories(dir_ / "cache/patchvec/weights");
  std::filesystem::copy_file(fixtures() / "resnet18.safetensors",
                             dir_ / "cache/patchvec/weights/r18.safetensors");
  EXPECT_NO_THROW(Model::load(path));
}

TEST_F(ModelFile, FilesWithStoredNeighboursScoreAsBefore) {
  // Earlier files stored the re-weighting neighbours; scoring now searches them, to the same
  // scores.
  const auto expected = model_->predict(images(true));
  const Model loaded = Model::load(saved_with_neighbours());
  expect_same(loaded.predict(images(true)), expected);
  EXPECT_EQ(loaded.info().options.coreset, CoresetMethod::kFast);
}

TEST_F(ModelFile, NewFilesNoLongerStoreNeighbours) {
  EXPECT_FALSE(patchcore::read_model_file(saved()).bank_neighbors.defined());
}

TEST_F(ForgedModelFile, ModelsOfTheFirstFormatStillLoad) {
  // Written before thresholds could come from good images: no method, rule or revision.
  const auto path = saved();
  forge(path, [](Header& h) {
    for (const char* key : {"method", "false_alarm_rate", "good_images"})
      h["thresholds"].erase(key);
    h.erase("similarity");
    h.erase("revision");
    h["coreset"].erase("method");
  });
  const Model loaded = Model::load(path);
  ASSERT_TRUE(loaded.info().thresholds.has_value());
  EXPECT_EQ(loaded.info().thresholds->method, ThresholdMethod::kF1);
  EXPECT_EQ(loaded.info().thresholds->image, 3.5f);
  EXPECT_FALSE(loaded.info().similarity.has_value());
  EXPECT_EQ(loaded.info().revision, 1);
  EXPECT_EQ(loaded.info().options.coreset, CoresetMethod::kExact);  // all there was then
}

TEST_F(ModelFile, NewFieldsRoundTrip) {
  Model model = Model::fit(images(false), "synthetic", pretrained_options());
  model.set_thresholds({.image = 2,
                        .pixel = 3,
                        .source = "false-alarm rate 0.01 on 12 images",
                        .method = ThresholdMethod::kFalseAlarmRate,
                        .false_alarm_rate = 0.01,
                        .good_images = 12});
  model.set_similarity_rule({.min_similarity = 0.97f, .false_alarm_rate = 0.01, .good_images = 9});
  model.save(dir_ / "m.pvm");
  const Model loaded = Model::load(dir_ / "m.pvm");
  EXPECT_EQ(loaded.info().thresholds->method, ThresholdMethod::kFalseAlarmRate);
  EXPECT_DOUBLE_EQ(loaded.info().thresholds->false_alarm_rate, 0.01);
  EXPECT_EQ(loaded.info().thresholds->good_images, 12);
  ASSERT_TRUE(loaded.info().similarity.has_value());
  EXPECT_FLOAT_EQ(loaded.info().similarity->min_similarity, 0.97f);
  EXPECT_EQ(loaded.info().similarity->good_images, 9);
}

// A fit whose held-out images the shortlist scores records how it compared with the exact search
// (the image scores the same, by design); the record round-trips; a fit by the exact search
// records nothing.
TEST_F(ModelFile, TheShortlistCheckIsRecordedAndRoundTrips) {
  PatchCoreOptions options = pretrained_options();
  options.calibration_folds = 5;
  options.search = SearchMethod::kShortlist;
  FitReport report;
  const Model model = Model::fit(images(false), "synthetic", options, &report);
  EXPECT_EQ(model.search_method(), SearchMethod::kShortlist);
  ASSERT_TRUE(model.info().shortlist_check.has_value());
  const ShortlistCheck check = *model.info().shortlist_check;
  EXPECT_GE(check.images, 1);
  // The first fold's held-out images (here 2 of 6 held out in all), at most 8.
  EXPECT_LT(check.images, static_cast<std::int64_t>(report.held_out_images.size()));
  EXPECT_EQ(check.patches, check.images * model.info().grid.height * model.info().grid.width);
  EXPECT_EQ(check.score_differences, 0);
  EXPECT_GE(check.recall_at_1, 0.0);
  EXPECT_LE(check.recall_at_1, 1.0);
  EXPECT_GE(check.max_relative_error, 0.0);
  model.save(dir_ / "shortlist.pvm");
  const Model loaded = Model::load(dir_ / "shortlist.pvm");
  EXPECT_EQ(loaded.search_method(), SearchMethod::kExact);  // auto, for a bank this small
  ASSERT_TRUE(loaded.info().shortlist_check.has_value());
  EXPECT_EQ(loaded.info().shortlist_check->patches, check.patches);
  EXPECT_EQ(loaded.info().shortlist_check->recall_at_1, check.recall_at_1);
  const Model shortlisted =
      Model::load(dir_ / "shortlist.pvm", {.search = SearchMethod::kShortlist});
  EXPECT_EQ(shortlisted.search_method(), SearchMethod::kShortlist);
  const std::vector<Prediction> a = shortlisted.predict(images(true));
  const std::vector<Prediction> b = loaded.predict(images(true));
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].score, b[i].score) << i;

  options.search = SearchMethod::kExact;
  EXPECT_FALSE(Model::fit(images(false), "synthetic", options).info().shortlist_check);
}

// Each reduced precision round-trips: the bank stays in bfloat16 (half the bytes), int8's
// activation ranges come back, and predictions are identical after loading. Such a model also
// runs in fp32 (the reference); another reduced precision was never checked and is refused.
TEST_F(ModelFile, ReducedPrecisionsRoundTrip) {
  const std::uintmax_t fp32_bytes = std::filesystem::file_size(saved());
  for (const Precision precision : {Precision::kBFloat16, Precision::kInt8}) {
    SCOPED_TRACE(precision_name(precision));
    if (!precision_unsupported(precision).empty()) {
      RecordProperty(std::string("skipped_") + precision_name(precision),
                     precision_unsupported(precision));
      continue;
    }
    PatchCoreOptions options = pretrained_options();
    options.precision = precision;
    Model model = Model::fit(images(false), "synthetic", options);
    model.set_agreement({.images = 7, .max_relative_difference = 0.01, .verdict_flips = 0});
    EXPECT_EQ(model.precision(), precision);
    const auto path = dir_ / (std::string(precision_name(precision)) + ".pvm");
    model.save(path);
    EXPECT_EQ(patchcore::read_model_file(path).bank.scalar_type(), at::kBFloat16);
    EXPECT_LT(std::filesystem::file_size(path), fp32_bytes * 6 / 10);
    const Model loaded = Model::load(path);
    EXPECT_EQ(loaded.precision(), precision);
    EXPECT_EQ(loaded.info().backbone.precision, precision);
    EXPECT_EQ(loaded.info().backbone.activation_max, model.info().backbone.activation_max);
    EXPECT_EQ(loaded.info().backbone.activation_max.empty(), precision != Precision::kInt8);
    ASSERT_TRUE(loaded.info().agreement.has_value());
    EXPECT_EQ(loaded.info().agreement->images, 7);
    EXPECT_TRUE(std::isnan(loaded.info().agreement->auroc));
    expect_same(model.predict(images(true)), loaded.predict(images(true)));

    const Model reference = Model::load(path, {.precision = Precision::kFloat32});
    EXPECT_EQ(reference.precision(), Precision::kFloat32);
    PredictTimings timings;
    const auto a = loaded.predict(images(true), "predict", &timings);
    const auto b = reference.predict(images(true));
    int differ = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_NEAR(a[i].score, b[i].score, 0.05 * b[i].score);
      differ += a[i].score != b[i].score;  // computed in the reduced precision
    }
    EXPECT_GT(differ, 0);
    // int8: the blobs leave the ranges measured on good images and are computed in float32,
    // exactly (unclipped, their scores would be 4x too low).
    EXPECT_EQ(timings.recomputed_in_float32 > 0, precision == Precision::kInt8);
    const Precision other = precision == Precision::kInt8 ? Precision::kBFloat16 : Precision::kInt8;
    EXPECT_NE(load_error(path, {.precision = other}).find("was never checked"), std::string::npos);
  }
}

TEST_F(ForgedModelFile, PrecisionFieldsAreChecked) {
  EXPECT_NE(refusal([](Header& h) { h["precision"]["name"] = "fp16"; }).find("precision.name"),
            std::string::npos);
  // A reduced precision needs its bank in BF16, and float32 its bank in F32.
  EXPECT_NE(refusal([](Header& h) { h["precision"]["name"] = "bf16"; }).find("section bank is F32"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) {
              h["precision"]["name"] = "int8";
              h["backbone"]["activation_min"] = {0.0, 1.0};
              h["backbone"]["activation_max"] = nlohmann::json::array({1.0, "x"});
            }).find("backbone.activation_max"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) {
              h["precision"]["agreement"] = {{"images", -1}};
            }).find("precision.agreement.images"),
            std::string::npos);
  EXPECT_NE(refusal([](Header& h) {
              h["shortlist_check"] = {{"images", 2}, {"patches", 10}, {"recall_at_1", 1.5}};
            }).find("shortlist_check.recall_at_1"),
            std::string::npos);
}

// int8 ranges that do not fit the backbone, or are not intervals, are refused on loading.
TEST_F(ModelFile, Int8RangesThatDoNotFitAreRefused) {
  if (!precision_unsupported(Precision::kInt8).empty()) {
    GTEST_SKIP() << precision_unsupported(Precision::kInt8);
  }
  const auto path = dir_ / "int8.pvm";
  save_int8_model(path);
  forge(path, [](Header& h) {
    h["backbone"]["activation_min"].erase(0);
    h["backbone"]["activation_max"].erase(0);
  });
  EXPECT_NE(load_error(path).find("activation ranges"), std::string::npos) << load_error(path);
  save_int8_model(path);
  forge(path, [](Header& h) { h["backbone"]["activation_max"][2] = -5.0; });
  EXPECT_NE(load_error(path).find("not a finite interval"), std::string::npos) << load_error(path);
}

// int8 models record the bits of their stem's weights: 7, which AVX2's byte multiply-adds (int16
// pair sums) multiply exactly; files from before have 8, which they would saturate. Such a model
// runs in fp32 where VNNI is missing (one warning), and --precision int8 refuses it there; a
// model of today runs in int8 on any CPU that has int8. The cap on oneDNN stands for a CPU
// without VNNI here.
TEST_F(ModelFile, Int8StemWeightBitsDecideWhereAModelRunsInInt8) {
  if (!precision_unsupported(Precision::kInt8).empty()) {
    GTEST_SKIP() << precision_unsupported(Precision::kInt8);
  }
  const auto path = dir_ / "int8.pvm";
  save_int8_model(path);
  EXPECT_EQ(Model::load(path).info().backbone.int8_stem_weight_bits, kInt8StemWeightBits);

  const auto eight = dir_ / "eight.pvm";
  const auto seven = dir_ / "seven.pvm";
  std::filesystem::copy_file(path, eight);
  std::filesystem::copy_file(path, seven);
  forge(eight, [](Header& h) { h["backbone"].erase("int8_stem_weight_bits"); });  // older
  ::setenv("ONEDNN_MAX_CPU_ISA", "AVX2", 1);
  EXPECT_EQ(Model::load(eight).precision(), Precision::kFloat32);
  EXPECT_NE(load_error(eight, {.precision = Precision::kInt8}).find("would saturate"),
            std::string::npos)
      << load_error(eight, {.precision = Precision::kInt8});
  EXPECT_EQ(Model::load(seven).precision(), Precision::kInt8);
  ::unsetenv("ONEDNN_MAX_CPU_ISA");
  EXPECT_EQ(Model::load(eight).precision(),
            cpu_has_native_int8() ? Precision::kInt8 : Precision::kFloat32);
  EXPECT_EQ(Model::load(seven).precision(), Precision::kInt8);
  forge(seven, [](Header& h) { h["backbone"]["int8_stem_weight_bits"] = 9; });
  EXPECT_NE(load_error(seven).find("backbone.int8_stem_weight_bits"), std::string::npos)
      << load_error(seven);
}

// Models of one pretrained backbone share it through a BackboneCache, but not int8's ranges:
// each category's are its own, so two int8 models with other ranges get two backbones.
TEST_F(ModelFile, Int8ModelsShareABackboneOnlyWithTheSameRanges) {
  if (!precision_unsupported(Precision::kInt8).empty()) {
    GTEST_SKIP() << precision_unsupported(Precision::kInt8);
  }
  const auto a = dir_ / "a.pvm";
  const auto b = dir_ / "b.pvm";
  save_int8_model(a);
  std::filesystem::copy_file(a, b);
  const auto cache = std::make_shared<BackboneCache>();
  const Model first = Model::load(a, {.backbones = cache});
  const Model same = Model::load(b, {.backbones = cache});
  EXPECT_EQ(cache->size(), 1U);
  forge(b, [](Header& h) {
    for (auto& v : h["backbone"]["activation_max"]) v = v.get<double>() * 2;
  });
  const Model other = Model::load(b, {.backbones = cache});
  EXPECT_EQ(cache->size(), 2U);
  const auto x = first.predict(images(true));
  const auto y = other.predict(images(true));
  int differ = 0;
  for (std::size_t i = 0; i < x.size(); ++i) differ += x[i].score != y[i].score;
  EXPECT_GT(differ, 0);  // the wider ranges' coarser steps, not the first model's backbone
}

// Incremental updates: good images join the bank without refitting.
TEST_F(ModelFile, AddingAFalseAlarmLowersItsScore) {
  Model model = Model::fit(images(false), "synthetic", pretrained_options());
  const std::int64_t bank_before = model.info().bank_size;
  const double radius = model.info().covering_radius;
  // The good test image the model likes least: what an operator would call a false alarm.
  const Category category = read_category(fixtures() / "data", "synthetic");
  std::vector<std::filesystem::path> good;
  for (const auto& s : category.test) {
    if (!s.anomalous()) good.push_back(s.image);
  }
  const auto before = model.predict(good);
  const auto worst =
      std::max_element(before.begin(), before.end(),
                       [](const auto& a, const auto& b) { return a.score < b.score; }) -
      before.begin();
  const std::filesystem::path added[] = {good[static_cast<std::size_t>(worst)]};
  const UpdateReport report = model.add_normal_images(added);
  EXPECT_EQ(report.images, 1);
  EXPECT_GT(report.centres_added, 0);
  EXPECT_EQ(model.info().bank_size, bank_before + report.centres_added);
  EXPECT_EQ(model.info().revision, 2);
  EXPECT_DOUBLE_EQ(report.covering_radius_before, radius);
  EXPECT_LE(report.covering_radius_after, radius * 1.0001);
  EXPECT_EQ(model.info().train_images, static_cast<std::int64_t>(images(false).size()) + 1);
  const auto after = model.predict(good);
  EXPECT_LT(after[worst].score, before[worst].score);
  for (std::size_t i = 0; i < good.size(); ++i) {
    EXPECT_LE(after[i].score, before[i].score * (1 + 1e-5))
        << "scores only drop where new patches are nearer";
  }
  // The file round-trips, revision included.
  model.save(dir_ / "updated.pvm");
  const Model loaded = Model::load(dir_ / "updated.pvm");
  EXPECT_EQ(loaded.info().revision, 2);
  expect_same(model.predict(good), loaded.predict(good));
  // An update that fails (an unreadable image) changes nothing.
  testing::write_text(dir_ / "broken.png", "not an image");
  const std::filesystem::path broken[] = {dir_ / "broken.png"};
  EXPECT_THROW(model.add_normal_images(broken), ImageError);
  EXPECT_EQ(model.info().revision, 2);
  EXPECT_EQ(model.info().bank_size, bank_before + report.centres_added);
}

TEST(MemoryBudget, SpilledPatchesGiveTheSameModel) {
  PatchCoreOptions in_memory = pretrained_options();
  PatchCoreOptions spilled = pretrained_options();
  spilled.max_memory_bytes = 1 << 20;  // far below the 7 MB of training patches
  FitReport report_a, report_b;
  const Model a = Model::fit(images(false), "synthetic", in_memory, &report_a);
  const Model b = Model::fit(images(false), "synthetic", spilled, &report_b);
  EXPECT_FALSE(report_a.spilled);
  EXPECT_TRUE(report_b.spilled);
  expect_same(a.predict(images(true)), b.predict(images(true)));
}

}  // namespace
}  // namespace pv
