// PyTorch checkpoints: the forms torch.save writes load to exactly the tensors of the equivalent
// safetensors file; hostile files are one clear error and nothing runs.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <patchvec/embedder.h>
#include <patchvec/error.h>

#include "nn/pickle.h"
#include "nn/reference.h"
#include "nn/resnet.h"
#include "nn/tensor_file.h"
#include "nn/weights.h"
#include "util/zip.h"

namespace pv::nn {
namespace {

std::filesystem::path checkpoint(const std::string& name) {
  return testing::nn_fixtures() / "checkpoints" / name;
}

// A tensor's values as float32, whatever its dtype.
std::vector<float> floats(const TensorEntry& entry) {
  const auto count = static_cast<std::int64_t>(entry.bytes.size() / dtype_size(entry.dtype));
  at::ScalarType type = at::kFloat;
  switch (entry.dtype) {
    case DType::kF16:
      type = at::kHalf;
      break;
    case DType::kBF16:
      type = at::kBFloat16;
      break;
    case DType::kI64:
      type = at::kLong;
      break;
    default:
      break;
  }
  const at::Tensor t =
      at::from_blob(const_cast<std::byte*>(entry.bytes.data()), {count}, at::TensorOptions(type))
          .to(at::kFloat);
  return {t.data_ptr<float>(), t.data_ptr<float>() + count};
}

void expect_same_tensors(const TensorFile& actual, const TensorFile& expected,
                         const std::string& prefix = "") {
  std::size_t compared = 0;
  for (const auto& [name, entry] : expected.tensors()) {
    const auto found = actual.tensors().find(prefix + name);
    ASSERT_NE(found, actual.tensors().end()) << name;
    EXPECT_EQ(found->second.shape, entry.shape) << name;
    EXPECT_EQ(found->second.dtype, entry.dtype) << name;
    EXPECT_EQ(floats(found->second), floats(entry)) << name;
    ++compared;
  }
  EXPECT_GT(compared, 100u);
}

class Forms : public ::testing::TestWithParam<std::string> {};

TEST_P(Forms, HoldExactlyTheTensorsOfTheSafetensorsFile) {
  const TensorFile reference(testing::nn_fixtures() / "resnet18.safetensors");
  const TensorFile file(checkpoint(GetParam()));
  expect_same_tensors(file, reference);
}

INSTANTIATE_TEST_SUITE_P(TorchSave, Forms,
                         ::testing::Values("resnet18.pth", "resnet18_legacy.pth",
                                           "resnet18_views.pth", "resnet18_wrapped.pth",
                                           "resnet18_deflated.pth"));

TEST(Checkpoint, FormatIsRecognisedFromTheBytes) {
  EXPECT_EQ(TensorFile(checkpoint("resnet18.pth")).format(), "PyTorch zip");
  EXPECT_EQ(TensorFile(checkpoint("resnet18_legacy.pth")).format(), "PyTorch legacy");
  EXPECT_EQ(TensorFile(testing::nn_fixtures() / "resnet18.safetensors").format(), "safetensors");
}

TEST(Checkpoint, HalfPrecisionMatchesTheHalfPrecisionSafetensors) {
  for (const std::string suffix : {"f16", "bf16"}) {
    expect_same_tensors(
        TensorFile(checkpoint("resnet18_" + suffix + ".pth")),
        TensorFile(testing::nn_fixtures() / ("resnet18_" + suffix + ".safetensors")));
  }
}

TEST(Checkpoint, LightningCheckpointKeepsItsPrefixAndItsObjectsStayInert) {
  const TensorFile file(checkpoint("resnet18_lightning.ckpt"));
  expect_same_tensors(file, TensorFile(testing::nn_fixtures() / "resnet18.safetensors"),
                      "model.backbone.");
  EXPECT_TRUE(file.tensors().contains("model.head.weight"));

  const TorchCheckpoint ckpt(checkpoint("resnet18_lightning.ckpt"));
  const auto* hparams = ckpt.root().find("hyper_parameters");
  ASSERT_NE(hparams, nullptr);
  EXPECT_EQ(hparams->text, "lightning.fabric.utilities.data.AttributeDict");
  const auto* backbone = hparams->find("backbone");
  ASSERT_NE(backbone, nullptr);
  EXPECT_EQ(backbone->text, "resnet18");
  const auto* epoch = ckpt.root().find("epoch");
  ASSERT_NE(epoch, nullptr);
  EXPECT_EQ(epoch->integer, 3);
}

TEST(Checkpoint, LoadsIntoTheBackboneUnderAPrefix) {
  ResNet network(resnet_spec("resnet18"));
  const WeightsReport report =
      load_weights(*network, TensorFile(checkpoint("resnet18_lightning.ckpt")), {"fc.", "layer4."});
  EXPECT_EQ(report.prefix, "model.backbone.");
  EXPECT_EQ(report.loaded, 75u);  // conv1 to layer3 of resnet18, without the counters
  const ResNet expected = testing::fixture_backbone("resnet18");
  for (const auto& item : expected->named_parameters()) {
    if (item.key().starts_with("layer4") || item.key().starts_with("fc")) continue;
    EXPECT_TRUE(at::equal(network->named_parameters()[item.key()], item.value())) << item.key();
  }
}

TEST(Checkpoint, EmbeddingsAreIdenticalToTheSafetensorsOnes) {
  const auto images = testing::fixture_images();
  EmbedderOptions options{.backbone = "resnet18", .batch_size = 4, .threads = 2};
  options.weights = testing::nn_fixtures() / "resnet18.safetensors";
  const PatchEmbeddings expected = Embedder(options).embed(images);
  for (const std::string name :
       {"resnet18.pth", "resnet18_legacy.pth", "resnet18_lightning.ckpt"}) {
    options.weights = checkpoint(name);
    const Embedder embedder(options);
    EXPECT_TRUE(embedder.pretrained());
    EXPECT_EQ(embedder.embed(images).values, expected.values) << name;
  }
}

// Hostile files.

std::string error_opening(const std::filesystem::path& path) {
  try {
    const TensorFile file(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(HostileCheckpoint, AskingToRunCodeIsRefusedAndNothingRuns) {
  const auto marker = testing::nn_fixtures() / "checkpoints" / "pwned";
  EXPECT_NE(error_opening(checkpoint("os_system.pth")).find("refers to posix.system"),
            std::string::npos)
      << error_opening(checkpoint("os_system.pth"));
  EXPECT_NE(error_opening(checkpoint("eval.pth")).find("builtins.eval"), std::string::npos)
      << error_opening(checkpoint("eval.pth"));
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(HostileCheckpoint, EachDefectIsOneClearError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"unknown_opcode.pth", "unsupported opcode 0xfe"},
      {"offset_past_end.pth", "tensor w: reaches element 1003 of a storage of 4"},
      {"lying_size.pth", "lies about its size"},
      {"bomb.pth", "zip bomb"},
      {"truncated.pth", "no end-of-directory record"},
      {"legacy_truncated.pth", "truncated"},
      {"whole_model.pth", "whole pickled torchvision.models.resnet.ResNet"},
  };
  for (const auto& [name, expected] : cases) {
    const std::string message = error_opening(checkpoint(name));
    EXPECT_NE(message.find(expected), std::string::npos) << name << ": " << message;
    EXPECT_NE(message.find(name), std::string::npos) << name << ": " << message;
  }
}

// The unpickler on hand-written programs.

pickle::Pickle unpickle(std::string_view program) {
  return pickle::Pickle(std::as_bytes(std::span(program.data(), program.size())), "test: ");
}

std::string unpickle_error(std::string_view program) {
  try {
    unpickle(program);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Unpickler, ReadsTheValuesOfEveryProtocol) {
  // Protocol 0: text integers, a list, a dict, memo by text.
  const auto text = unpickle("(lp0\nI42\naI01\naL-7L\na(dp1\nS'k'\nF1.5\nsa.");
  ASSERT_TRUE(text.root().is(pickle::Kind::kList));
  ASSERT_EQ(text.root().items.size(), 4u);
  EXPECT_EQ(text.root().items[0]->integer, 42);
  EXPECT_TRUE(text.root().items[1]->boolean);
  EXPECT_EQ(text.root().items[2]->integer, -7);
  ASSERT_NE(text.root().items[3]->find("k"), nullptr);
  EXPECT_EQ(text.root().items[3]->find("k")->real, 1.5);
  // Protocol 2: LONG1 negative, BININT, memo shared between two places.
  const auto binary =
      unpickle(std::string("\x80\x02]q\x00(\x8a\x01\xffJ\xfe\xff\xff\xffh\x00"
                           "e.",
                           18));
  ASSERT_EQ(binary.root().items.size(), 3u);
  EXPECT_EQ(binary.root().items[0]->integer, -1);
  EXPECT_EQ(binary.root().items[1]->integer, -2);
  EXPECT_EQ(binary.root().items[2], &binary.root());  // a list that holds itself
}

TEST(Unpickler, RefusesWhatAStateDictNeverNeeds) {
  EXPECT_NE(unpickle_error("cos\nsystem\n(S'ls'\ntR.").find("refers to os.system"),
            std::string::npos);
  EXPECT_NE(unpickle_error("csubprocess\nPopen\n.").find("subprocess.Popen"), std::string::npos);
  EXPECT_NE(unpickle_error("c__builtin__\ngetattr\n.").find("getattr"), std::string::npos);
  EXPECT_NE(unpickle_error("ctorch\nload\n.").find("torch.load"), std::string::npos);
  EXPECT_NE(unpickle_error(std::string("\x80\x02\x82\x01.", 5)).find("extension registry"),
            std::string::npos);
  EXPECT_NE(unpickle_error("(lp0\n").find("truncated"), std::string::npos);
  EXPECT_NE(unpickle_error("g7\n.").find("memo entry 7 was never stored"), std::string::npos);
  EXPECT_NE(unpickle_error(std::string("\x80\x02X\xff\xff\xff\x7f", 8)).find("runs past the end"),
            std::string::npos);
  EXPECT_NE(unpickle_error("0.").find("stack underflow"), std::string::npos);
  EXPECT_NE(unpickle_error("N(.").find("malformed stack"), std::string::npos);
}

TEST(Unpickler, KnownLibraryClassesBecomeInertObjects) {
  const auto p = unpickle("cpathlib\nPosixPath\n(S'/etc/passwd'\ntR.");
  EXPECT_TRUE(p.root().is(pickle::Kind::kObject));
  EXPECT_EQ(p.root().text, "pathlib.PosixPath");
  ASSERT_EQ(p.root().items.size(), 1u);
  EXPECT_EQ(p.root().items[0]->text, "/etc/passwd");
}

TEST(Zip, RefusesArchivesThatDoNotAddUp) {
  const std::string not_zip = "PK\x03\x04 and then nothing";
  EXPECT_THROW(ZipArchive(std::as_bytes(std::span(not_zip.data(), not_zip.size())), "z: "), Error);
}

}  // namespace
}  // namespace pv::nn
